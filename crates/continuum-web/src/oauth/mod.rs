//! OAuth 2 / SMART App Launch 2 endpoints (being written).

use axum::Router;

use crate::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
}
