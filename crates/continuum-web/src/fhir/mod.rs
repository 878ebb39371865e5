//! The FHIR R4 REST API (`/fhir`): HTTP in, core calls, HTTP out.
//!
//! Content negotiation (JSON only: XML asked for → 406, sent → 415), body limits (413), `_pretty`, `Prefer`,
//! ETag/Last-Modified/Location headers, and the single mapping from [`CoreError`] to an OperationOutcome
//! response live here.

mod caller;
mod capability;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use continuum_core::fhir::{outcome_of, Handling};
use continuum_core::{CoreError, Prefer, Saved};
use continuum_fhir::{IssueSeverity, IssueType, OperationOutcome};
use serde_json::Value;

pub use caller::Caller;
pub use capability::capability_statement;

use crate::AppState;

pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/metadata", get(metadata))
        .route("/", get(search_system).post(bundle))
        .route("/_history", get(history_system))
        .route(
            "/{ty}",
            get(search_type)
                .post(create)
                .put(conditional_update)
                .delete(conditional_delete),
        )
        .route("/{ty}/_search", axum::routing::post(search_type_post))
        .route("/{ty}/_history", get(history_type))
        .route(
            "/{ty}/{id}",
            get(read).put(update).delete(delete).patch(patch),
        )
        .route("/{ty}/{id}/_history", get(history_instance))
        .route(
            "/{ty}/{id}/{compartment_type}",
            get(compartment_or_operation).post(operation_post),
        )
        .route("/{ty}/{id}/_history/{vid}", get(vread))
        .method_not_allowed_fallback(method_not_allowed)
}

/// An error on its way out: an OperationOutcome with the matching status.
pub struct ApiError {
    status: StatusCode,
    outcome: Value,
    /// `WWW-Authenticate` of a 401.
    challenge: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, code: IssueType, msg: impl Into<String>) -> Self {
        ApiError {
            status,
            outcome: OperationOutcome::error(code, msg).to_json(),
            challenge: None,
        }
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        if let CoreError::Internal(detail) = &e {
            tracing::error!(detail = %detail, "internal error");
        }
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError {
            status,
            outcome: outcome_of(&e),
            challenge: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.outcome).unwrap_or_default();
        let mut resp = (self.status, [(header::CONTENT_TYPE, FHIR_JSON)], body).into_response();
        if let Some(c) = self.challenge {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
        resp
    }
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        IssueType::NotFound,
        "no such endpoint",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        IssueType::NotSupported,
        "this method is not allowed on this URL",
    )
}

/// What every FHIR request carries besides its path: query, negotiation, preferences, base URL.
pub struct Ctx {
    params: Vec<(String, String)>,
    pretty: bool,
    prefer: Option<Prefer>,
    handling: Handling,
    base: String,
    headers: HeaderMap,
    max_body: usize,
}

fn wants_xml(v: &str) -> bool {
    let v = v.to_ascii_lowercase();
    v.contains("xml") || v == "html" || v.contains("turtle")
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let params: Vec<(String, String)> = parts
            .uri
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let not_acceptable = || {
            ApiError::new(
                StatusCode::NOT_ACCEPTABLE,
                IssueType::NotSupported,
                "this server speaks FHIR JSON only",
            )
        };
        if let Some((_, f)) = params.iter().find(|(k, _)| k == "_format") {
            let f = f.to_ascii_lowercase();
            let json = matches!(
                f.as_str(),
                "json" | "application/json" | "application/fhir+json"
            ) || f.starts_with("application/fhir+json");
            if !json {
                return Err(not_acceptable());
            }
        } else if let Some(accept) = parts
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
        {
            let acceptable = accept.split(',').any(|a| {
                let a = a
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                a.is_empty() || a == "*/*" || a == "application/*" || a.contains("json")
            });
            if !acceptable
                || (wants_xml(accept) && !accept.contains("json") && !accept.contains("*/*"))
            {
                return Err(not_acceptable());
            }
        }
        let pretty = params.iter().any(|(k, v)| k == "_pretty" && v == "true");
        let mut prefer = None;
        let mut handling = Handling::Lenient;
        for v in parts
            .headers
            .get_all("prefer")
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            for item in v.split([',', ';']) {
                match item.trim() {
                    "return=minimal" => prefer = Some(Prefer::Minimal),
                    "return=representation" => prefer = Some(Prefer::Representation),
                    "return=OperationOutcome" => prefer = Some(Prefer::OperationOutcome),
                    "handling=strict" => handling = Handling::Strict,
                    "handling=lenient" => handling = Handling::Lenient,
                    _ => {}
                }
            }
        }
        let base = match &state.config.public_base {
            Some(b) => b.trim_end_matches('/').to_string(),
            None => {
                let host = parts
                    .headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .filter(|h| {
                        h.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
                    })
                    .unwrap_or("localhost");
                format!("http://{host}/fhir")
            }
        };
        Ok(Ctx {
            params,
            pretty,
            prefer,
            handling,
            base,
            headers: parts.headers.clone(),
            max_body: state.config.max_body_bytes,
        })
    }
}

impl Ctx {
    /// Read a JSON request body: 415 for other media types, 413 beyond the limit, 400 for malformed JSON.
    async fn json_body(&self, body: Body, patch: bool) -> Result<Value, ApiError> {
        if let Some(ct) = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
        {
            let media = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            let ok = matches!(
                media.as_str(),
                "application/fhir+json" | "application/json" | "application/json+fhir"
            ) || (patch && media == "application/json-patch+json");
            if !ok {
                let msg = if patch {
                    "PATCH takes application/json-patch+json"
                } else {
                    "the body must be application/fhir+json"
                };
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    IssueType::NotSupported,
                    msg,
                ));
            }
        }
        let bytes: Bytes = axum::body::to_bytes(body, self.max_body)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    IssueType::TooLong,
                    format!("the request body is larger than {} bytes", self.max_body),
                )
            })?;
        if bytes.is_empty() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                IssueType::Invalid,
                "the request body is empty",
            ));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                IssueType::Structure,
                format!("the body is not valid JSON: {e}"),
            )
        })
    }

    fn if_match(&self) -> Result<Option<i64>, ApiError> {
        match self
            .headers
            .get(header::IF_MATCH)
            .and_then(|v| v.to_str().ok())
        {
            None => Ok(None),
            Some(v) => {
                let t = v.trim();
                let t = t.strip_prefix("W/").unwrap_or(t).trim_matches('"');
                t.parse().map(Some).map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        IssueType::Invalid,
                        format!("If-Match '{v}' is not a version ETag"),
                    )
                })
            }
        }
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    fn query_string(&self) -> String {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.params {
            if !matches!(k.as_str(), "_format" | "_pretty") {
                ser.append_pair(k, v);
            }
        }
        ser.finish()
    }

    fn respond(&self, status: StatusCode, body: Vec<u8>) -> Response {
        let body = if self.pretty {
            serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| serde_json::to_vec_pretty(&v).ok())
                .unwrap_or(body)
        } else {
            body
        };
        (status, [(header::CONTENT_TYPE, FHIR_JSON)], body).into_response()
    }
}

/// Run a core call on the blocking pool (the store is synchronous).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CoreError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => Err(CoreError::Internal(format!("worker failed: {e}")).into()),
    }
}

fn version_headers(resp: &mut Response, version: i64, last_updated: time::OffsetDateTime) {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("W/\"{version}\"")) {
        h.insert(header::ETAG, v);
    }
    let system: std::time::SystemTime = last_updated.into();
    if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(system)) {
        h.insert(header::LAST_MODIFIED, v);
    }
}

/// The response to a write, shaped by `Prefer: return=`.
fn saved_response(ctx: &Ctx, saved: Saved, default: Prefer) -> Response {
    let status = if saved.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = match ctx.prefer.unwrap_or(default) {
        Prefer::Minimal => Vec::new(),
        Prefer::Representation => saved.body.clone(),
        Prefer::OperationOutcome => {
            let what = if saved.created { "created" } else { "updated" };
            let oo = OperationOutcome::single(
                IssueSeverity::Information,
                IssueType::Informational,
                format!(
                    "{}/{} {what} (version {})",
                    saved.resource_type, saved.id, saved.version
                ),
            );
            serde_json::to_vec(&oo.to_json()).unwrap_or_default()
        }
    };
    let mut resp = if body.is_empty() {
        status.into_response()
    } else {
        ctx.respond(status, body)
    };
    version_headers(&mut resp, saved.version, saved.last_updated);
    let location = format!(
        "{}/{}/{}/_history/{}",
        ctx.base, saved.resource_type, saved.id, saved.version
    );
    if let Ok(v) = HeaderValue::from_str(&location) {
        if saved.created {
            resp.headers_mut().insert(header::LOCATION, v.clone());
        }
        resp.headers_mut().insert(header::CONTENT_LOCATION, v);
    }
    resp
}

fn deleted_response() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

async fn metadata(ctx: Ctx) -> Response {
    let cs = capability_statement(&ctx.base);
    ctx.respond(StatusCode::OK, serde_json::to_vec(&cs).unwrap_or_default())
}

async fn read(
    State(s): State<AppState>,
    ctx: Ctx,
    Caller(access): Caller,
    Path((ty, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let fhir = s.fhir.clone();
    let r = blocking(move || fhir.guarded(&access).read(&ty, &id)).await?;
    if let Some(inm) = ctx.header("if-none-match") {
        if continuum_core::fhir::parse_etag(&inm) == Some(r.version) {
            return Ok(StatusCode::NOT_MODIFIED.into_response());
        }
    }
    let mut resp = ctx.respond(StatusCode::OK, r.body);
    version_headers(&mut resp, r.version, r.last_updated);
    Ok(resp)
}

async fn vread(
    State(s): State<AppState>,
    ctx: Ctx,
    Caller(access): Caller,
    Path((ty, id, vid)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let fhir = s.fhir.clone();
    let r = blocking(move || fhir.guarded(&access).vread(&ty, &id, &vid)).await?;
    let mut resp = ctx.respond(StatusCode::OK, r.body);
    version_headers(&mut resp, r.version, r.last_updated);
    Ok(resp)
}

async fn create(
    State(s): State<AppState>,
    ctx: Ctx,
    Caller(access): Caller,
    Path(ty): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let resource = ctx.json_body(body, false).await?;
    let if_none_exist = ctx.header("if-none-exist");
    let fhir = s.fhir.clone();
    let saved = blocking(move || {
        fhir.guarded(&access)
            .create(&ty, resource, if_none_exist.as_deref())
    })
    .await?;
    Ok(saved_response(&ctx, saved, Prefer::Representation))
}

async fn update(
    State(s): State<AppState>,
    ctx: Ctx,
    Caller(access): Caller,
    Path((ty, id)): Path<(String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    let resource = ctx.json_body(body, false).await?;
    let if_match = ctx.if_match()?;
    let fhir = s.fhir.clone();
    let saved =
        blocking(move || fhir.guarded(&access).update(&ty, &id, resource, if_match)).await?;
    Ok(saved_response(&ctx, saved, Prefer::Representation))
}

async fn conditional_update(
    State(s): State<AppState>,
    ctx: Ctx,
    Caller(access): Caller,
    Path(ty): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let resource = ctx.json_body(body, false).await?;
    let query = ctx.query_string();
    let fhir = s.fhir.clone();
    let saved = blocking(move || {
        fhir.guarded(&access)
            .conditional_update(&ty, &query, resource)
    })
    .await?;
    Ok(saved_response(&ctx, saved, Prefer::Representation))
}

async fn patch(
    State(s): State<AppState>,
    ctx: Ctx,
    Caller(access): Caller,
    Path((ty, id)): Path<(String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    let doc = ctx.json_body(body, true).await?;
    let if_match = ctx.if_match()?;
    let fhir = s.fhir.clone();
    let saved = blocking(move || fhir.guarded(&access).patch(&ty, &id, doc, if_match)).await?;
    Ok(saved_response(&ctx, saved, Prefer::Representation))
}

async fn delete(
    State(s): State<AppState>,
    ctx: Ctx,
    Caller(access): Caller,
    Path((ty, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let if_match = ctx.if_match()?;
    let fhir = s.fhir.clone();
    blocking(move || fhir.guarded(&access).delete(&ty, &id, if_match)).await?;
    Ok(deleted_response())
}

async fn conditional_delete(
    State(s): State<AppState>,
    ctx: Ctx,
    Caller(access): Caller,
    Path(ty): Path<String>,
) -> Result<Response, ApiError> {
    let query = ctx.query_string();
    let fhir = s.fhir.clone();
    blocking(move || fhir.guarded(&access).conditional_delete(&ty, &query)).await?;
    Ok(deleted_response())
}

async fn search(
    s: AppState,
    ctx: Ctx,
    access: std::sync::Arc<continuum_core::access::Access>,
    ty: Option<String>,
    params: Vec<(String, String)>,
) -> Result<Response, ApiError> {
    let fhir = s.fhir.clone();
    let base = ctx.base.clone();
    let handling = ctx.handling;
    let body = blocking(move || {
        fhir.guarded(&access)
            .search(&base, ty.as_deref(), &params, handling)
    })
    .await?;
    Ok(ctx.respond(StatusCode::OK, body))
}

async fn search_type(
    State(s): State<AppState>,
    ctx: Ctx,
    Caller(access): Caller,
    Path(ty): Path<String>,
) -> Result<Response, ApiError> {
    let params = ctx.params.clone();
    search(s, ctx, access, Some(ty), params).await
}

async fn search_system(
    State(s): State<AppState>,
    ctx: Ctx,
    Caller(access): Caller,
) -> Result<Response, ApiError> {
    let params = ctx.params.clone();
    search(s, ctx, access, None, params).await
}

/// `POST Type/_search` with form-encoded parameters (merged with any in the URL).
async fn search_type_post(
    State(s): State<AppState>,
    ctx: Ctx,
    Caller(access): Caller,
    Path(ty): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let ct = ctx.header("content-type").unwrap_or_default();
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IssueType::NotSupported,
            "_search takes application/x-www-form-urlencoded",
        ));
    }
    let bytes = axum::body::to_bytes(body, ctx.max_body)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                IssueType::TooLong,
                "the request body is too large",
            )
        })?;
    let mut params = ctx.params.clone();
    params.extend(form_urlencoded::parse(&bytes).into_owned());
    search(s, ctx, access, Some(ty), params).await
}

/// `GET [base]/Patient/123/Observation` (compartment search) and `GET [base]/Patient/123/$everything`.
async fn compartment_or_operation(
    State(s): State<AppState>,
    ctx: Ctx,
    Caller(access): Caller,
    Path((ty, id, second)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let fhir = s.fhir.clone();
    let base = ctx.base.clone();
    let params = ctx.params.clone();
    let handling = ctx.handling;
    let body = match second.as_str() {
        "$everything" if ty == "Patient" => {
            blocking(move || fhir.guarded(&access).everything(&base, &id, &params)).await?
        }
        op if op.starts_with('$') => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                IssueType::NotSupported,
                format!("the operation {op} is not supported on {ty}"),
            ))
        }
        _ => {
            blocking(move || {
                fhir.guarded(&access)
                    .compartment_search(&base, &ty, &id, &second, &params, handling)
            })
            .await?
        }
    };
    Ok(ctx.respond(StatusCode::OK, body))
}

/// How long a break-the-glass opening lasts.
const BREAK_GLASS_SECS: i64 = 4 * 3600;

/// `POST [base]/Patient/123/$break-the-glass` with a Parameters body holding `reason`: a clinician outside the
/// care relationship opens the record for four hours. Audited (purpose BTG) and alerted to the security officer.
async fn operation_post(
    State(s): State<AppState>,
    ctx: Ctx,
    Caller(access): Caller,
    Path((ty, id, op)): Path<(String, String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    if ty != "Patient" || op != "$break-the-glass" {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            IssueType::NotSupported,
            format!("the operation {op} is not supported on {ty}"),
        ));
    }
    let params = ctx.json_body(body, false).await?;
    let reason = params["parameter"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "reason"))
        .and_then(|p| p["valueString"].as_str())
        .map(str::trim)
        .unwrap_or("")
        .to_string();
    if reason.chars().count() < 10 {
        return Err(CoreError::BadRequest(
            "break-the-glass needs a reason of at least 10 characters in a Parameters 'reason'"
                .into(),
        )
        .into());
    }
    let state = s.clone();
    let out = blocking(move || {
        let clinician = match &access.principal.kind {
            continuum_core::access::PrincipalKind::Staff { roles, .. } => roles.iter().any(|r| {
                state.policy.roles.get(r).is_some_and(|p| {
                    p.reach == continuum_core::access::ReachKind::Care
                })
            }),
            _ => false,
        };
        if !clinician {
            return Err(CoreError::Forbidden(
                "break-the-glass is for clinicians outside the care relationship".into(),
            ));
        }
        // the system's own read: the patient must exist (a clinician may learn that much when asking)
        state.fhir.read("Patient", &id)?;
        let now = continuum_store::to_micros(time::OffsetDateTime::now_utc());
        let expires = now + BREAK_GLASS_SECS * 1_000_000;
        let internal = |e: continuum_auth::AuthError| CoreError::Internal(e.to_string());
        let mut account = state
            .auth
            .by_id(&access.principal.account_id)
            .map_err(internal)?
            .ok_or_else(|| CoreError::Forbidden("unknown account".into()))?;
        account.break_glass.retain(|b| b.expires > now && b.patient != id);
        account.break_glass.push(continuum_auth::BreakGlass {
            patient: id.clone(),
            reason: reason.clone(),
            expires,
        });
        state.auth.update(&account).map_err(internal)?;
        let rec = continuum_core::audit::record(
            &access.principal,
            now,
            continuum_core::audit::Event::BreakGlass,
            continuum_core::audit::Outcome::Success,
            Some(&id),
            &[format!("Patient/{id}")],
            None,
            Some(&reason),
        );
        let store = state.fhir.store();
        store.audit().append_audit(&[rec])?;
        store.accounts().enqueue_mail(&continuum_store::OutboxRow {
            seq: 0,
            created: now,
            recipient: "security-officer".into(),
            subject: format!(
                "Break-the-glass: {} opened Patient/{id}",
                access.principal.username
            ),
            body: format!(
                "{} ({}) opened the record of Patient/{id} outside a care relationship until {}.\nStated reason: {reason}\nReview it in the audit report: continuum audit report --patient {id}\n",
                access.principal.username,
                access.principal.account_id,
                continuum_store::format_instant(continuum_store::from_micros(expires)),
            ),
        })?;
        tracing::warn!(user = %access.principal.username, patient = %id, "break-the-glass");
        Ok(expires)
    })
    .await?;
    let body = serde_json::json!({
        "resourceType": "Parameters",
        "parameter": [{
            "name": "expires",
            "valueInstant": continuum_store::format_instant(continuum_store::from_micros(out))
        }]
    });
    Ok(ctx.respond(
        StatusCode::OK,
        serde_json::to_vec(&body).unwrap_or_default(),
    ))
}

async fn history(
    s: AppState,
    ctx: Ctx,
    access: std::sync::Arc<continuum_core::access::Access>,
    ty: Option<String>,
    id: Option<String>,
) -> Result<Response, ApiError> {
    let fhir = s.fhir.clone();
    let base = ctx.base.clone();
    let params = ctx.params.clone();
    let body = blocking(move || {
        fhir.guarded(&access)
            .history(&base, ty.as_deref(), id.as_deref(), &params)
    })
    .await?;
    Ok(ctx.respond(StatusCode::OK, body))
}

async fn history_system(
    State(s): State<AppState>,
    ctx: Ctx,
    Caller(access): Caller,
) -> Result<Response, ApiError> {
    history(s, ctx, access, None, None).await
}

async fn history_type(
    State(s): State<AppState>,
    ctx: Ctx,
    Caller(access): Caller,
    Path(ty): Path<String>,
) -> Result<Response, ApiError> {
    history(s, ctx, access, Some(ty), None).await
}

async fn history_instance(
    State(s): State<AppState>,
    ctx: Ctx,
    Caller(access): Caller,
    Path((ty, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    history(s, ctx, access, Some(ty), Some(id)).await
}

async fn bundle(
    State(s): State<AppState>,
    ctx: Ctx,
    Caller(access): Caller,
    body: Body,
) -> Result<Response, ApiError> {
    let doc = ctx.json_body(body, false).await?;
    let fhir = s.fhir.clone();
    let base = ctx.base.clone();
    // Bundle responses carry only status, location and etag unless the client asks for representations.
    let prefer = ctx.prefer.unwrap_or(Prefer::Minimal);
    let out = blocking(move || fhir.guarded(&access).bundle(&base, doc, prefer)).await?;
    Ok(ctx.respond(StatusCode::OK, out))
}
