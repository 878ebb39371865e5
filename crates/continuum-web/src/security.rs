//! Security headers on every response, CSRF and Origin checks for cookie-authenticated writes (being written).

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::AppState;

/// Adds the security headers to every response.
pub(crate) async fn headers(State(_state): State<AppState>, req: Request, next: Next) -> Response {
    next.run(req).await
}
