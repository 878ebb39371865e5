//! The patient portal and staff workspace pages (server-rendered HTML; being written).

use axum::Router;

use crate::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
}
