//! What a resolver reaches through its context: the app state, the viewer,
//! the request's DataLoaders.
//!
//! Everything that depends on who asks goes through here (the viewer, the
//! DataLoaders, which act as the viewer, the client's address), so that
//! `shared` can tell a render that depends on the viewer from one that does
//! not: keep it that way.

use std::sync::Arc;

use async_graphql::Context;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::{
    auth::{Viewer, rate::ClientIp},
    error::AppError,
    graphql::{loaders::Loaders, shared::Sharing},
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
    /// Whether the viewer is one of `users`. Prefer it to comparing with
    /// `viewer()` yourself: a shared render that was told "no" stays good for
    /// everyone else outside `users`.
    fn viewer_among(&self, users: &[Uuid]) -> bool;
    fn loaders(&self) -> &Loaders;
    /// The client's address (rate limits).
    fn client_ip(&self) -> ClientIp;
}

/// Records, while an event is rendered to be shared, that the render used
/// something that depends on who asks.
fn used_viewer(ctx: &Context<'_>) {
    if let Some(sharing) = ctx.data_opt::<Arc<Sharing>>() {
        sharing.used_viewer();
    }
}

impl ContextExt for Context<'_> {
    fn state(&self) -> &AppState {
        self.data_unchecked::<AppState>()
    }

    fn viewer(&self) -> Option<Viewer> {
        used_viewer(self);
        self.data_opt::<RequestViewer>().and_then(|v| v.0)
    }

    fn viewer_among(&self, users: &[Uuid]) -> bool {
        match self.data_opt::<Arc<Sharing>>() {
            Some(sharing) => sharing.viewer_among(users),
            None => self.viewer().is_some_and(|v| users.contains(&v.user_id)),
        }
    }

    fn loaders(&self) -> &Loaders {
        used_viewer(self);
        self.data_unchecked::<Loaders>()
    }

    fn client_ip(&self) -> ClientIp {
        used_viewer(self);
        self.data_opt::<ClientIp>().copied().unwrap_or_default()
    }
}
