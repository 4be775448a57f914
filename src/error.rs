//! One error type for the whole server and the one list of error codes.
//!
//! Nothing here knows GraphQL: `graphql::error` maps an `AppError` to a
//! GraphQL error with its `extensions.code`. `AppError` deliberately does not
//! implement `Display`: async-graphql converts any `Display` error on `?` and
//! drops its code, so without it the only way out of a resolver is the mapping
//! that keeps the code.

use std::{borrow::Cow, fmt};

use sea_orm::{DbErr, SqlErr};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every `extensions.code` the server sends (SEMANTICS "Identity and errors").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    Unauthenticated,
    Forbidden,
    NotFound,
    BadUserInput,
    Conflict,
    RateLimited,
    InternalServerError,
    /// The document is not GraphQL.
    GraphqlParseFailed,
    /// The document does not fit the schema or a document limit.
    GraphqlValidationFailed,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::BadUserInput => "BAD_USER_INPUT",
            Self::Conflict => "CONFLICT",
            Self::RateLimited => "RATE_LIMITED",
            Self::InternalServerError => "INTERNAL_SERVER_ERROR",
            Self::GraphqlParseFailed => "GRAPHQL_PARSE_FAILED",
            Self::GraphqlValidationFailed => "GRAPHQL_VALIDATION_FAILED",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug)]
pub enum AppError {
    Unauthenticated(String),
    Forbidden(String),
    NotFound(String),
    BadUserInput(String),
    Conflict(String),
    /// `retry_after`: whole seconds until the request may succeed.
    RateLimited {
        message: String,
        retry_after: u64,
    },
    /// Anything the client cannot act on. Its cause is logged, never shown.
    Internal(BoxError),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::BadUserInput(_) => ErrorCode::BadUserInput,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Internal(_) => ErrorCode::InternalServerError,
        }
    }

    /// What the client is told: never the cause of an internal error.
    pub fn message(&self) -> &str {
        match self {
            Self::Unauthenticated(m)
            | Self::Forbidden(m)
            | Self::NotFound(m)
            | Self::BadUserInput(m)
            | Self::Conflict(m)
            | Self::RateLimited { message: m, .. } => m,
            Self::Internal(_) => "internal server error",
        }
    }

    /// For the log: the message, and for an internal error its whole cause chain.
    pub fn report(&self) -> Cow<'_, str> {
        match self {
            Self::Internal(source) => Cow::Owned(ErrorChain(source.as_ref()).to_string()),
            other => Cow::Borrowed(other.message()),
        }
    }

    /// Seconds to wait before trying again, for `RATE_LIMITED`.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    pub fn bad_input(msg: impl Into<String>) -> Self {
        Self::BadUserInput(msg.into())
    }

    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::NotFound(msg.into())
    }

    pub fn forbidden(msg: impl Into<String>) -> Self {
        Self::Forbidden(msg.into())
    }

    pub fn internal(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(err))
    }

    /// The message every `UNAUTHENTICATED` for a missing viewer carries.
    pub fn sign_in_required() -> Self {
        Self::Unauthenticated("sign in required".into())
    }
}

impl From<DbErr> for AppError {
    fn from(err: DbErr) -> Self {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => {
                Self::Conflict("that already exists".into())
            }
            _ => Self::internal(err),
        }
    }
}

impl From<tokio::task::JoinError> for AppError {
    fn from(err: tokio::task::JoinError) -> Self {
        Self::internal(err)
    }
}

/// For the command line, where an `AppError` ends the process.
impl From<AppError> for BoxError {
    fn from(err: AppError) -> Self {
        match err {
            AppError::Internal(source) => source,
            other => format!("{}: {}", other.code(), other.message()).into(),
        }
    }
}

/// Displays an error with all its sources, for the log.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
    }
}
