//! `serve`'s notification flags (`--notify`, `--notify-webhook`, `--notify-on`,
//! `--notify-cost-over`, `--notify-interval`), turned into the forward crate's
//! [`NotifySettings`](sightline_forward::notify::NotifySettings).
//!
//! Resolved once at start-up; a mistake is a config error (exit 2) that says what to fix. This
//! module must never print a webhook's path (Slack's carry their secret there).

use clap::Args;
use sightline_forward::notify::{NotifySettings, Rule, redact_url};

use std::time::Duration;

use crate::exit::Exit;

#[derive(Debug, Args, Default)]
pub struct NotifyArgs {
    /// Desktop notifications (notify-send on Linux, osascript on macOS) when an agent waits
    /// for you, something fails, or a run passes the cost budget.
    #[arg(long, env = "SIGHTLINE_NOTIFY")]
    pub notify: bool,
    /// POST alerts as `{"text": "..."}` (Slack-compatible) to this URL; repeatable.
    #[arg(
        long = "notify-webhook",
        env = "SIGHTLINE_NOTIFY_WEBHOOKS",
        value_delimiter = ','
    )]
    pub notify_webhooks: Vec<String>,
    /// Which rules fire: waiting, failure, cost (default all; cost needs --notify-cost-over).
    #[arg(long = "notify-on", value_delimiter = ',')]
    pub notify_on: Vec<String>,
    /// Alert once when a run's cost passes this many US dollars.
    #[arg(long = "notify-cost-over")]
    pub notify_cost_over: Option<f64>,
    /// At most one alert per rule and session in this long (e.g. 60s, 5m). Default 60s.
    #[arg(long = "notify-interval")]
    pub notify_interval: Option<String>,
}

/// The settings, or `None` when no notification was asked for.
pub fn settings(args: &NotifyArgs, url: &str) -> anyhow::Result<Option<NotifySettings>> {
    if !args.notify && args.notify_webhooks.is_empty() {
        if !args.notify_on.is_empty() || args.notify_cost_over.is_some() {
            return Err(Exit::config(
                "--notify-on and --notify-cost-over need --notify or --notify-webhook URL",
            ));
        }
        return Ok(None);
    }
    let mut s = NotifySettings {
        desktop: args.notify,
        dashboard_url: Some(url.to_string()),
        cost_budget_usd: args.notify_cost_over,
        ..NotifySettings::default()
    };
    for w in &args.notify_webhooks {
        if !(w.starts_with("http://") || w.starts_with("https://")) {
            return Err(Exit::config(format!(
                "--notify-webhook {}: give an http:// or https:// URL",
                redact_url(w)
            )));
        }
        s.webhooks.push(w.clone());
    }
    if !args.notify_on.is_empty() {
        s.rules = args
            .notify_on
            .iter()
            .map(|r| {
                Rule::parse(r).ok_or_else(|| {
                    Exit::config(format!(
                        "--notify-on `{r}`: use waiting, failure or cost (comma-separated)"
                    ))
                })
            })
            .collect::<anyhow::Result<_>>()?;
    }
    if s.rules.contains(&Rule::Cost) && s.cost_budget_usd.is_none() && !args.notify_on.is_empty() {
        return Err(Exit::config(
            "--notify-on cost needs a budget: add --notify-cost-over USD",
        ));
    }
    if let Some(b) = s.cost_budget_usd
        && !(b.is_finite() && b > 0.0)
    {
        return Err(Exit::config(
            "--notify-cost-over: give a positive number of US dollars",
        ));
    }
    if let Some(i) = &args.notify_interval {
        s.per_key_interval = interval(i).ok_or_else(|| {
            Exit::config(format!(
                "--notify-interval `{i}` is not a duration like 30s, 5m or 1h"
            ))
        })?;
    }
    Ok(Some(s))
}

/// `30s`, `5m`, `1h` or a bare number of seconds.
fn interval(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.trim().parse().ok()?;
    let seconds = match unit {
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return None,
    };
    // `try_`: a huge number is refused, not a panic.
    Duration::try_from_secs_f64(seconds).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(interval("30s"), Some(Duration::from_secs(30)));
        assert_eq!(interval("5m"), Some(Duration::from_secs(300)));
        assert_eq!(interval("2"), Some(Duration::from_secs(2)));
        assert_eq!(interval("-1s"), None);
        assert_eq!(interval("5 parsecs"), None);
    }
}
