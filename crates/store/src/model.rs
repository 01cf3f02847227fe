//! The rows a [`crate::Store`] reads and writes.

use rampart_core::deploy::{AppSettings, ReleaseConfig, ReleaseStatus};
use rampart_core::token::TokenHash;
use rampart_core::{AppId, AppName, Domain, EnvName, Role, TokenId, UserId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub id: UserId,
    pub email: Option<String>,
    pub role: Role,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    /// `None` once the user's personal data has been erased.
    pub email: Option<String>,
    pub role: Role,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    pub id: TokenId,
    pub user_id: UserId,
    pub name: String,
    pub hash: TokenHash,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: TokenId,
    pub user_id: UserId,
    /// The owning user's role: a token acts with it.
    pub role: Role,
    pub name: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApp {
    pub id: AppId,
    pub name: AppName,
    pub domains: Vec<Domain>,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRow {
    pub id: AppId,
    pub name: AppName,
    pub domains: Vec<Domain>,
    pub created_at: String,
    pub env_count: u64,
    pub settings: AppSettings,
    /// The release that should serve the app.
    pub live_release: Option<u64>,
}

/// An environment variable whose value is sealed by the platform.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedVar {
    pub name: EnvName,
    /// Nonce followed by ciphertext and tag; opaque to the store.
    pub sealed: Vec<u8>,
    pub updated_at: String,
}

impl std::fmt::Debug for SealedVar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedVar")
            .field("name", &self.name)
            .field("sealed", &format_args!("{} bytes", self.sealed.len()))
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// A release to record; the store gives it the next number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRelease {
    pub image: String,
    pub image_id: String,
    pub config: ReleaseConfig,
    pub created_by: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRow {
    pub app_id: AppId,
    pub number: u64,
    pub image: String,
    pub image_id: String,
    pub config: ReleaseConfig,
    pub created_by: String,
    pub created_at: String,
    pub status: ReleaseStatus,
    pub reason: Option<String>,
    pub finished_at: Option<String>,
}

/// Something that happened to an app's replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppEvent {
    pub time: String,
    pub kind: String,
    pub message: String,
}
