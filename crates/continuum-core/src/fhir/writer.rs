//! Bundles written as bytes: stored resource bodies are spliced in as they are, never parsed and
//! re-serialised (the single biggest cost of serving searches otherwise).

use continuum_store::{format_instant, Method, StoredResource};
use serde_json::{json, Value};

pub struct BundleWriter {
    buf: Vec<u8>,
    entries: usize,
}

fn push_json(buf: &mut Vec<u8>, v: &Value) {
    // Serialising a serde_json::Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *buf, v);
}

impl BundleWriter {
    pub fn new(kind: &str, total: Option<u64>, links: &[(String, String)]) -> Self {
        let mut buf = Vec::with_capacity(16 * 1024);
        buf.extend_from_slice(br#"{"resourceType":"Bundle","id":"#);
        push_json(&mut buf, &Value::String(uuid::Uuid::new_v4().to_string()));
        buf.extend_from_slice(br#","type":"#);
        push_json(&mut buf, &Value::String(kind.to_string()));
        if let Some(t) = total {
            buf.extend_from_slice(format!(r#","total":{t}"#).as_bytes());
        }
        if !links.is_empty() {
            buf.extend_from_slice(br#","link":"#);
            let links: Vec<Value> = links
                .iter()
                .map(|(rel, url)| json!({"relation": rel, "url": url}))
                .collect();
            push_json(&mut buf, &Value::Array(links));
        }
        BundleWriter { buf, entries: 0 }
    }

    /// Add an entry: `fields` is a JSON object of the entry's other elements; `resource` raw JSON bytes.
    pub fn entry(&mut self, full_url: Option<&str>, resource: Option<&[u8]>, fields: Value) {
        self.buf.extend_from_slice(if self.entries == 0 {
            br#","entry":["#
        } else {
            b","
        });
        self.entries += 1;
        self.buf.push(b'{');
        let mut first = true;
        let mut sep = |buf: &mut Vec<u8>| {
            if !first {
                buf.push(b',');
            }
            first = false;
        };
        if let Some(url) = full_url {
            sep(&mut self.buf);
            self.buf.extend_from_slice(br#""fullUrl":"#);
            push_json(&mut self.buf, &Value::String(url.to_string()));
        }
        if let Some(body) = resource.filter(|b| !b.is_empty()) {
            sep(&mut self.buf);
            self.buf.extend_from_slice(br#""resource":"#);
            self.buf.extend_from_slice(body);
        }
        if let Value::Object(map) = fields {
            for (k, v) in map {
                sep(&mut self.buf);
                push_json(&mut self.buf, &Value::String(k));
                self.buf.push(b':');
                push_json(&mut self.buf, &v);
            }
        }
        self.buf.push(b'}');
    }

    pub fn match_entry(&mut self, base: &str, r: &StoredResource) {
        let url = format!("{base}/{}/{}", r.resource_type, r.id);
        self.entry(
            Some(&url),
            Some(&r.body),
            json!({"search": {"mode": "match"}}),
        );
    }

    pub fn history_entry(&mut self, base: &str, r: &StoredResource) {
        let url = format!("{base}/{}/{}", r.resource_type, r.id);
        let (request_url, status) = match r.method {
            Method::Create => (r.resource_type.clone(), "201 Created"),
            Method::Update => (format!("{}/{}", r.resource_type, r.id), "200 OK"),
            Method::Delete => (format!("{}/{}", r.resource_type, r.id), "204 No Content"),
        };
        let fields = json!({
            "request": {"method": r.method.as_str(), "url": request_url},
            "response": {
                "status": status,
                "etag": format!("W/\"{}\"", r.version),
                "lastModified": format_instant(r.last_updated),
            }
        });
        let body = if r.deleted {
            None
        } else {
            Some(r.body.as_slice())
        };
        self.entry(Some(&url), body, fields);
    }

    pub fn outcome_entry(&mut self, warning: &str) {
        let oo = json!({"resourceType": "OperationOutcome",
            "issue": [{"severity": "warning", "code": "not-supported", "diagnostics": warning}]});
        let body = serde_json::to_vec(&oo).unwrap_or_default();
        self.entry(None, Some(&body), json!({"search": {"mode": "outcome"}}));
    }

    pub fn finish(mut self) -> Vec<u8> {
        if self.entries > 0 {
            self.buf.push(b']');
        }
        self.buf.push(b'}');
        self.buf
    }
}

/// `self` and, when there is a next page, `next` links. The cursor replaces any previous one.
pub fn page_links(
    path: &str,
    params: &[(String, String)],
    next: Option<String>,
) -> Vec<(String, String)> {
    links(path, params, next, None, false)
}

/// A searchset's links: `self`, `first` (the search without a cursor), `previous` on every page reached
/// through a cursor (unless paging backwards reached the start), and `next` when there is a next page.
pub fn search_links(
    path: &str,
    params: &[(String, String)],
    next: Option<String>,
    previous: Option<String>,
) -> Vec<(String, String)> {
    links(path, params, next, previous, true)
}

fn links(
    path: &str,
    params: &[(String, String)],
    next: Option<String>,
    previous: Option<String>,
    first: bool,
) -> Vec<(String, String)> {
    let keep: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "_cursor").collect();
    let encode = |extra: Option<&str>| {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &keep {
            ser.append_pair(k, v);
        }
        if let Some(c) = extra {
            ser.append_pair("_cursor", c);
        }
        let q = ser.finish();
        if q.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{q}")
        }
    };
    let cursor = params
        .iter()
        .find(|(k, _)| k == "_cursor")
        .map(|(_, v)| v.as_str());
    let mut links = vec![("self".to_string(), encode(cursor))];
    if first {
        links.push(("first".to_string(), encode(None)));
    }
    if let Some(p) = previous {
        links.push(("previous".to_string(), encode(Some(&p))));
    }
    if let Some(n) = next {
        links.push(("next".to_string(), encode(Some(&n))));
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_bundle_has_no_entry_array() {
        let w = BundleWriter::new("searchset", Some(0), &[]);
        let v: Value = serde_json::from_slice(&w.finish()).unwrap_or_default();
        assert_eq!(v["total"], 0);
        assert!(v.get("entry").is_none());
    }

    #[test]
    fn entries_splice_raw_bodies() {
        let mut w = BundleWriter::new(
            "searchset",
            None,
            &page_links("http://x/fhir/Patient", &[], Some("5".into())),
        );
        w.entry(
            Some("http://x/fhir/Patient/1"),
            Some(br#"{"resourceType":"Patient","id":"1"}"#),
            json!({"search": {"mode": "match"}}),
        );
        w.entry(None, None, json!({"response": {"status": "200 OK"}}));
        let v: Value = serde_json::from_slice(&w.finish()).unwrap_or_default();
        assert_eq!(v["entry"][0]["resource"]["id"], "1");
        assert_eq!(v["entry"][1]["response"]["status"], "200 OK");
        assert_eq!(v["link"][1]["url"], "http://x/fhir/Patient?_cursor=5");
    }

    #[test]
    fn search_links_keep_other_parameters_and_replace_the_cursor() {
        let params = vec![
            ("code".to_string(), "a|b".to_string()),
            ("_cursor".to_string(), "9".to_string()),
        ];
        let links = search_links(
            "http://x/fhir/Observation",
            &params,
            Some("12".into()),
            Some("p".into()),
        );
        let rels: Vec<&str> = links.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(rels, vec!["self", "first", "previous", "next"]);
        assert_eq!(links[0].1, "http://x/fhir/Observation?code=a%7Cb&_cursor=9");
        assert_eq!(links[1].1, "http://x/fhir/Observation?code=a%7Cb");
        assert_eq!(links[2].1, "http://x/fhir/Observation?code=a%7Cb&_cursor=p");
        assert_eq!(
            links[3].1,
            "http://x/fhir/Observation?code=a%7Cb&_cursor=12"
        );
    }
}
