//! What a resolver reaches through its context: the app state, the viewer,
//! the request's DataLoaders.

use async_graphql::Context;
use sea_orm::DatabaseConnection;

use crate::{auth::Viewer, error::AppError, graphql::loaders::Loaders, state::AppState};

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
}
