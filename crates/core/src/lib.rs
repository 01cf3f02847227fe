//! Rampart's domain vocabulary: validated names, opaque identifiers, roles,
//! API token format, the audit chain, the wire types of the control-plane API
//! and the validated configuration.
//!
//! Nothing here performs I/O. Every value that arrives from outside the
//! process (a name in a request, a key in `rampart.toml`, a token in a header)
//! is turned into one of these types by a constructor that says precisely
//! which rule the input broke, so the rest of the code base handles only
//! values that are already known to be valid.

pub mod action;
pub mod audit;
pub mod config;
pub mod deploy;
pub mod evidence;
pub mod id;
pub mod manifest;
pub mod name;
pub mod role;
pub mod schedule;
pub mod seal;
pub mod secret;
pub mod security_txt;
pub mod terminal;
pub mod time;
pub mod token;
pub mod wire;

pub use action::Action;
pub use id::{AppId, RequestId, TokenId, UserId};
pub use name::{AppName, Domain, EnvName, NameError};
pub use role::Role;
pub use secret::Secret;
