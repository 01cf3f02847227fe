//! Watch: what the platform notices about the traffic it carries, as pure
//! code over typed events. Nothing here does I/O or reads a clock: the
//! caller passes each event with the time it happened, and acts on the
//! decisions it gets back (the platform bans at the edge, records and
//! audits).
//!
//! Alerts (`alert`) are counted and grouped by condition, webhook
//! deliveries are signed (`notify`), and each app's figures are kept for
//! Prometheus and `rampart top` (`metrics`).
//!
//! The per-client detectors follow CrowdSec's scenarios and defaults: a
//! leaky bucket per client address and host for each behaviour, and a
//! decision when one overflows.

pub mod alert;
pub mod baseline;
mod bucket;
pub mod detect;
pub mod metrics;
pub mod notify;

pub use detect::{Decision, Detector, DetectorConfig, Request, Scenario};
