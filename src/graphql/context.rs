//! What a resolver reaches through its context: the app state, the viewer,
//! the request's DataLoaders.

use async_graphql::{Context, ID, Interface};
use sea_orm::DatabaseConnection;

use crate::{
    app::AppState,
    auth::Viewer,
    error::AppError,
    graphql::{
        direct::DirectMessage,
        loaders::Loaders,
        room::{Message, Room},
        social::Post,
        user::User,
    },
};

/// Who the request acts for; put in the request data by the transport.
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

/// Relay Global Object Identification.
#[derive(Interface)]
#[graphql(name = "Node", field(name = "id", ty = "ID"))]
pub enum NodeInterface {
    User(User),
    Room(Room),
    Message(Message),
    DirectMessage(DirectMessage),
    Post(Post),
}
