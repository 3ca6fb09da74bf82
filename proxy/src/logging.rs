//! Logging set-up: the main log on standard error (text or JSON) and, when `audit` is configured,
//! the `moat::audit` events as their own JSON stream (standard output or an append-only file),
//! so the security decisions can be shipped to a SIEM without the operational noise.
//!
//! The audit stream is always at INFO whatever `RUST_LOG` says: turning the log level down must
//! not silence the record of who was refused. Its lines are JSON objects with the event's fields
//! at the top level and the connection span (`id`, `peer`, `listener`, `client_id`) under `span`
//! (README "Logs" lists them). Values from the network are already escaped where they are logged.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::sync::Arc;

use tracing::Metadata;
use tracing_subscriber::filter::{filter_fn, EnvFilter, FilterExt};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::config::{AuditOutput, LogFormat};

/// The target every security decision is logged under.
pub const AUDIT_TARGET: &str = "moat::audit";

/// The default filter of the main log when `RUST_LOG` is not set.
const DEFAULT_FILTER: &str = "info,rustls=error,rumqttd=off";

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("cannot open the audit log {path}: {source}")]
    AuditFile { path: PathBuf, source: std::io::Error },
    #[error("cannot install the log subscriber: {0}")]
    Init(#[from] tracing_subscriber::util::TryInitError),
}

fn is_audit(meta: &Metadata<'_>) -> bool {
    meta.target() == AUDIT_TARGET
}

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(format: LogFormat, audit: Option<&AuditOutput>) -> Result<(), LoggingError> {
    let env = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let main = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let main = match format {
        LogFormat::Json => main.json().boxed(),
        LogFormat::Text => main.boxed(),
    };
    let Some(audit) = audit else {
        // No separate stream: the audit events stay in the main log, as before.
        return Ok(tracing_subscriber::registry().with(main.with_filter(env)).try_init()?);
    };
    // The main log leaves the audit events to their own stream.
    let main = main.with_filter(env.and(filter_fn(|m| !is_audit(m))));
    // Spans at INFO and above are let through so the audit lines carry their connection span.
    let audit_filter = filter_fn(|m| is_audit(m) || (m.is_span() && *m.level() <= tracing::Level::INFO));
    let audit_layer = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true);
    let audit_layer = match audit {
        AuditOutput::Stdout => audit_layer.with_writer(std::io::stdout).with_filter(audit_filter).boxed(),
        AuditOutput::File(path) => {
            let file = open_audit_file(path)?;
            audit_layer.with_writer(Arc::new(file)).with_filter(audit_filter).boxed()
        }
    };
    Ok(tracing_subscriber::registry().with(main).with(audit_layer).try_init()?)
}

/// Appends (never truncates: an audit trail is not rewritten); new files are private (0600).
/// Every event is written with one `write` on an `O_APPEND` descriptor, so lines never interleave
/// and `logrotate`'s `copytruncate` works.
fn open_audit_file(path: &PathBuf) -> Result<File, LoggingError> {
    let mut options = OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map_err(|source| LoggingError::AuditFile { path: path.clone(), source })
}
