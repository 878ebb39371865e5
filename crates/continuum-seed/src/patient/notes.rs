//! Clinical notes: a short, plainly synthetic progress note (DocumentReference with a text/plain attachment)
//! for each recent visit, so the portal and chart have notes to show and to release at once.

use base64::Engine;
use rand::Rng;
use serde_json::json;

use super::super::fhir_datetime;
use super::super::person::Visit;
use super::super::resources::Ctx;
use super::{new_urn, Sim};

const PLANS: [&str; 6] = [
    "Continue current care. Return as needed.",
    "Reviewed results with the patient. Follow up in one year.",
    "Supportive care discussed. Return if not improving in one week.",
    "Medication reviewed; refills as prescribed. Follow up in three months.",
    "Patient education given. Next routine visit as scheduled.",
    "No changes today. Call the clinic with any questions.",
];

impl Sim<'_> {
    /// A progress note for visit `v`, titled `title`, about `reason` if there was one.
    pub(super) fn note(&mut self, ctx: &Ctx, v: &Visit, title: &str, reason: Option<&str>) {
        let plan = PLANS[self.rng.random_range(0..PLANS.len())];
        let author = ctx.practitioner["display"]
            .as_str()
            .unwrap_or("the clinician");
        let place = ctx.org["display"].as_str().unwrap_or("the clinic");
        let text = format!(
            "SYNTHETIC NOTE - generated test data, not a real patient.\n\
             {title} at {place}.\n\
             Reason: {}.\n\
             Plan: {plan}\n\
             Signed: {author}\n",
            reason.unwrap_or("routine care")
        );
        let data = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
        let signed = v.end;
        let urn = new_urn(&mut self.rng);
        let doc = json!({
            "resourceType": "DocumentReference",
            "status": "current",
            "docStatus": "final",
            "type": { "text": "Progress note" },
            "category": [{
                "coding": [{
                    "system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
                    "code": "clinical-note",
                    "display": "Clinical Note"
                }],
                "text": "Clinical Note"
            }],
            "subject": { "reference": ctx.patient },
            "date": fhir_datetime(signed, ctx.offset),
            "author": [ctx.practitioner.clone()],
            "authenticator": ctx.practitioner.clone(),
            "custodian": ctx.org.clone(),
            "description": format!("{title} (synthetic)"),
            "content": [{
                "attachment": {
                    "contentType": "text/plain; charset=utf-8",
                    "language": "en-US",
                    "data": data,
                    "title": format!("{title} note"),
                    "creation": fhir_datetime(signed, ctx.offset)
                }
            }],
            "context": {
                "encounter": [{ "reference": ctx.encounter }],
                "period": { "start": fhir_datetime(v.start, ctx.offset), "end": fhir_datetime(v.end, ctx.offset) }
            }
        });
        self.push(&urn, "DocumentReference", doc);
    }
}
