//! Log-parser fallback: tails agent CLI log files (`SIGHTLINE_LOG_FILES`) and turns the lines
//! that matter into events — tool failures become tool `failed` events with severity `error`,
//! error and warning lines become `log` events — for agents that offer no hook, stream or OTLP.
//!
//! Patterns are deliberately simple and case-insensitive (see [`classify`]); ordinary lines are
//! skipped rather than stored, so a chatty log does not flood the hub. Each file is its own run
//! (`log:<file name>`). A line whose mapping fails (or panics) becomes an error event and is
//! skipped; the offset moves past it. This module must never store a line but through the
//! event builder, whose validation redacts it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sightline_schema::{EntityType, Event, Severity, Source, Status, Timestamp};

use crate::framework::{Adapter, AdapterConfig, AdapterContext, AdapterError, AdapterFuture};
use crate::util::{contain, event_id, line_error_event, redacted, short, stable_hash};

pub const NAME: &str = "logs";

/// What a line says.
#[derive(Debug, PartialEq)]
pub enum LineKind {
    /// A tool call failed; the tool's name when the line gives it.
    ToolFailed(Option<String>),
    Error,
    Warning,
    Other,
}

/// Classifies one log line.
pub fn classify(line: &str) -> LineKind {
    let lower = line.to_ascii_lowercase();
    // "Tool Bash failed", "tool `edit` error:", "tool_use ... is_error: true"
    if let Some(at) = lower.find("tool") {
        let rest = &lower[at..];
        if rest.contains("failed")
            || rest.contains("error")
            || rest.contains("is_error: true")
            || rest.contains("\"is_error\":true")
        {
            let name = line[at + 4..]
                .trim_start_matches(|c: char| {
                    c == ' '
                        || c == ':'
                        || c == '`'
                        || c == '"'
                        || c == '\''
                        || c == '_'
                        || c == '='
                })
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'))
                .next()
                .filter(|n| {
                    !n.is_empty()
                        && !["failed", "error", "use", "call"]
                            .contains(&n.to_ascii_lowercase().as_str())
                })
                .map(str::to_string);
            return LineKind::ToolFailed(name);
        }
    }
    let exit_nonzero = lower
        .find("exit code")
        .map(|i| {
            lower[i + 9..]
                .trim_start_matches([' ', ':', '='])
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit() && c != '0')
        })
        .unwrap_or(false);
    if exit_nonzero {
        return LineKind::ToolFailed(None);
    }
    if lower.contains("error")
        || lower.contains("traceback")
        || lower.contains("panicked")
        || lower.contains("fatal")
        || lower.contains("exception")
    {
        return LineKind::Error;
    }
    if lower.contains("warn") {
        return LineKind::Warning;
    }
    LineKind::Other
}

/// Maps one line (with its byte offset, for a stable id) of `file`.
pub fn map_line(
    file: &Path,
    offset: u64,
    line: &str,
    now: Timestamp,
) -> Option<Result<Event, String>> {
    let kind = classify(line);
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("log");
    let run = format!("log:{name}");
    let (entity, status, severity, title) = match &kind {
        LineKind::ToolFailed(tool) => (
            EntityType::Tool,
            Some(Status::Failed),
            Severity::Error,
            format!("{} failed", tool.clone().unwrap_or_else(|| "tool".into())),
        ),
        LineKind::Error => (EntityType::Log, None, Severity::Error, short(line, 160)),
        LineKind::Warning => (EntityType::Log, None, Severity::Warn, short(line, 160)),
        LineKind::Other => return None,
    };
    let path = file.to_string_lossy();
    Some(
        Event::builder(Source::Process, "log.line", entity, title)
            .event_id(event_id(
                "log",
                &[&stable_hash(&[path.as_bytes()]), &offset.to_string()],
            ))
            .ts(now)
            .run_id(&run)
            .session_id(&run)
            .agent(name)
            .status(status)
            .severity(severity)
            .summary(short(line, 400))
            .tag("log-parser")
            .payload_value(json!({"file": path, "offset": offset, "line": line}))
            .build(now)
            .map_err(|e| e.0),
    )
}

pub struct LogAdapter {
    pub files: Vec<PathBuf>,
    pub poll: Duration,
}

impl LogAdapter {
    pub fn build(config: &AdapterConfig) -> Result<Arc<dyn Adapter>, AdapterError> {
        if config.log_files.is_empty() {
            return Err(AdapterError::Start {
                name: NAME.into(),
                message: "no log files to follow: set SIGHTLINE_LOG_FILES=path[,path...]".into(),
            });
        }
        Ok(Arc::new(LogAdapter {
            files: config.log_files.clone(),
            poll: config.poll,
        }))
    }
}

impl Adapter for LogAdapter {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(self: Arc<Self>, ctx: AdapterContext) -> AdapterFuture {
        Box::pin(async move {
            loop {
                for file in crate::tail::expand(&self.files, Some("log")) {
                    let key = file.to_string_lossy().to_string();
                    let mut offset = ctx.checkpoint(&key).and_then(|v| v.as_u64()).unwrap_or(0);
                    loop {
                        let (lines, next) = match crate::tail::read_lines(&file, offset) {
                            Ok(r) => r,
                            Err(e) => {
                                ctx.error(format!("{}: {e}", file.display()));
                                break;
                            }
                        };
                        if next == offset {
                            break;
                        }
                        let now = Timestamp::now();
                        let mut at = offset;
                        let mut events = Vec::new();
                        for line in &lines {
                            // A mapping that fails or panics is recorded and skipped; the
                            // checkpoint still moves past the line.
                            match contain(|| map_line(&file, at, line, now).transpose()) {
                                Ok(Some(e)) => events.push(e),
                                Ok(None) => {}
                                Err(message) => {
                                    events.extend(line_error_event(
                                        Source::Process,
                                        "log",
                                        &file,
                                        at,
                                        line,
                                        &message,
                                        now,
                                    ));
                                    ctx.error(redacted(&format!(
                                        "{}: the line at byte {at}: {message}",
                                        file.display()
                                    )));
                                }
                            }
                            at += line.len() as u64 + 1;
                        }
                        ctx.emit(events).await?;
                        offset = next;
                        ctx.set_checkpoint(&key, json!(offset));
                    }
                }
                if ctx.sleep(self.poll).await {
                    return Ok(());
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_failures_errors_and_noise() {
        assert_eq!(
            classify("Tool Bash failed: exit 1"),
            LineKind::ToolFailed(Some("Bash".into()))
        );
        assert_eq!(
            classify("[tool: edit] error: file not found"),
            LineKind::ToolFailed(Some("edit".into()))
        );
        assert_eq!(
            classify("command finished with exit code 2"),
            LineKind::ToolFailed(None)
        );
        assert_eq!(
            classify("command finished with exit code 0"),
            LineKind::Other
        );
        assert_eq!(classify("ERROR rate limited"), LineKind::Error);
        assert_eq!(classify("warning: slow"), LineKind::Warning);
        assert_eq!(classify("all good"), LineKind::Other);
    }
}
