//! What a resolver reaches through its context: the app state, the viewer,
//! the request's DataLoaders.

use async_graphql::Context;
use sea_orm::DatabaseConnection;

use crate::{
    auth::{Viewer, rate::ClientIp},
    error::AppError,
    graphql::loaders::Loaders,
    state::AppState,
};

/// Who the request acts for; put in the request data by `Endpoint`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestViewer(pub Option<Viewer>);

pub trait ContextExt {
    fn state(&self) -> &AppState;
    fn db(&self) -> &DatabaseConnection {
        &self.state().db
    }
    fn viewer(&self) -> Option<Viewer>;
    /// The viewer, or `UNAUTHENTICATED`.
    fn require_viewer(&self) -> Result<Viewer, AppError> {
        self.viewer().ok_or_else(AppError::sign_in_required)
    }
    fn loaders(&self) -> &Loaders;
    /// The client's address (rate limits).
    fn client_ip(&self) -> ClientIp;
}

impl ContextExt for Context<'_> {
    fn state(&self) -> &AppState {
        self.data_unchecked::<AppState>()
    }

    fn viewer(&self) -> Option<Viewer> {
        self.data_opt::<RequestViewer>().and_then(|v| v.0)
    }

    fn loaders(&self) -> &Loaders {
        self.data_unchecked::<Loaders>()
    }

    fn client_ip(&self) -> ClientIp {
        self.data_opt::<ClientIp>().copied().unwrap_or_default()
    }
}
