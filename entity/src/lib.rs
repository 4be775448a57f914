//! SeaORM entities, one module per table. Generated with sea-orm-cli from the
//! migrated PostgreSQL schema, then kept in step by hand (see README).
//! Nothing here knows about GraphQL or HTTP.

pub mod conversation;
pub mod direct_event;
pub mod direct_message;
pub mod follow;
pub mod message;
pub mod post;
pub mod reaction;
pub mod refresh_token;
pub mod room;
pub mod room_event;
pub mod room_member;
pub mod user;
