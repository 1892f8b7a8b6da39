//! Background threads of the agent besides the sender: the heartbeat (process CPU and RSS from
//! /proc, transport counters, and per-function aggregates) and the live-control long poll.
//!
//! The heartbeat never takes the GIL. The control thread waits on the network without the GIL
//! and takes it only for the moment it hands a new configuration to Python. Neither may ever
//! raise into, block, or outlive the interpreter's finalization (both stop at `stop()`).

use crate::clock;
use crate::http::{Client, Endpoint};
use crate::json;
use crate::tracer;
use crate::transport;
use pyo3::prelude::*;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

static STOP: AtomicBool = AtomicBool::new(false);
static HB_GEN: AtomicU64 = AtomicU64::new(0);
static CTL_GEN: AtomicU64 = AtomicU64::new(0);
static SLEEPER: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());

/// Sleeps up to `d`, waking early when `stop` is called.
fn nap(d: Duration) {
    let g = SLEEPER.0.lock().unwrap_or_else(|e| e.into_inner());
    let _ = SLEEPER.1.wait_timeout(g, d);
}

/// Holds the sleeper's lock across a fork (see `fork.rs`).
pub fn lock_for_fork() -> std::sync::MutexGuard<'static, ()> {
    SLEEPER.0.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn stop() {
    STOP.store(true, Ordering::SeqCst);
    HB_GEN.fetch_add(1, Ordering::SeqCst);
    CTL_GEN.fetch_add(1, Ordering::SeqCst);
    SLEEPER.1.notify_all();
}

/// (utime+stime seconds, rss bytes, threads) of this process from /proc/self.
pub fn proc_sample() -> Option<(f64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name, which may itself contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    let threads: u64 = f.get(17)?.parse().ok()?;
    let rss_pages: u64 = f.get(21)?.parse().ok()?;
    Some(((utime + stime) / tck, rss_pages * page, threads))
}

/// Builds the heartbeat and function-statistics events and queues them.
pub fn beat(last: &mut Option<(u64, f64)>) {
    tracer::request_publish();
    let (fns, ident) = tracer::take_stats();
    if ident.run_id.is_empty() {
        return;
    }
    let now_mono = clock::mono_ns();
    let ts = clock::rfc3339_ms(clock::wall_ns_at(now_mono));
    for (meta, d, t) in fns {
        let qual = meta.qualified();
        let mut o = String::with_capacity(512);
        let mut first = true;
        let title = format!("stats {qual}");
        ident.write_head(
            &mut o,
            &mut first,
            &ts,
            "function_stats",
            ident.main_tid,
            "metric",
            &qual,
            &title,
        );
        json::key(&mut o, &mut first, "metrics");
        let _ = write!(
            o,
            "{{\"count\":{},\"errors\":{},\"total_ms\":{},\"min_ms\":{},\"max_ms\":{},\"mean_ms\":{},\"delta_count\":{},\"delta_total_ms\":{}}}",
            t.count,
            t.errors,
            t.total_ns as f64 / 1e6,
            t.min_ns as f64 / 1e6,
            t.max_ns as f64 / 1e6,
            if t.count > 0 { t.total_ns as f64 / 1e6 / t.count as f64 } else { 0.0 },
            d.count,
            d.total_ns as f64 / 1e6
        );
        json::key(&mut o, &mut first, "payload");
        o.push('{');
        let mut pf = true;
        json::key(&mut o, &mut pf, "module");
        json::push_str(&mut o, &meta.module);
        json::key(&mut o, &mut pf, "qualname");
        json::push_str(&mut o, &meta.qualname);
        json::key(&mut o, &mut pf, "file");
        json::push_str(&mut o, &meta.file);
        json::key(&mut o, &mut pf, "line");
        let _ = write!(o, "{}", meta.line);
        json::key(&mut o, &mut pf, "histogram");
        o.push('{');
        for (i, label) in tracer::BUCKET_LABELS.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            let _ = write!(o, "\"{}\":{}", label, t.buckets[i]);
        }
        o.push_str("}}}");
        transport::global().push(o, false);
    }
    // The process heartbeat.
    let ts_stats = transport::global().stats();
    let (cpu_s, rss, threads) = proc_sample().unwrap_or((0.0, 0, 0));
    let cpu_pct = match last {
        Some((t0, c0)) if now_mono > *t0 => (cpu_s - *c0) / ((now_mono - *t0) as f64 / 1e9) * 100.0,
        _ => 0.0,
    };
    *last = Some((now_mono, cpu_s));
    let sent = tracer::registry()
        .as_ref()
        .map(|r| r.detail_sent)
        .unwrap_or(0);
    let (calls, skipped) = tracer::counters();
    let mut o = String::with_capacity(512);
    let mut first = true;
    ident.write_head(
        &mut o,
        &mut first,
        &ts,
        "heartbeat",
        ident.main_tid,
        "metric",
        "process",
        "heartbeat",
    );
    json::key(&mut o, &mut first, "metrics");
    let _ = write!(
        o,
        "{{\"cpu_percent\":{:.2},\"rss_bytes\":{},\"threads\":{},\"calls\":{},\"detail_events\":{},\"detail_skipped\":{},\"dropped\":{},\"queued\":{},\"rejected\":{}}}",
        cpu_pct,
        rss,
        threads,
        calls,
        sent,
        skipped,
        ts_stats.dropped,
        ts_stats.queued,
        ts_stats.rejected
    );
    json::key(&mut o, &mut first, "payload");
    o.push('{');
    let mut pf = true;
    json::key(&mut o, &mut pf, "tracing");
    o.push_str(if tracer::ACTIVE.load(Ordering::Relaxed) {
        "true"
    } else {
        "false"
    });
    if let Some(e) = &ts_stats.last_error {
        json::key(&mut o, &mut pf, "last_transport_error");
        json::push_str(&mut o, e);
    }
    o.push_str("}}");
    transport::global().push(o, false);
}

pub fn start_heartbeat(interval: Duration) {
    STOP.store(false, Ordering::SeqCst);
    let gen = HB_GEN.fetch_add(1, Ordering::SeqCst) + 1;
    let _ = std::thread::Builder::new()
        .name("sightline-heartbeat".into())
        .spawn(move || {
            let mut last = None;
            // A first sample so the first CPU figure covers one interval.
            if let Some((c, _, _)) = proc_sample() {
                last = Some((clock::mono_ns(), c));
            }
            loop {
                nap(interval);
                if STOP.load(Ordering::SeqCst) || HB_GEN.load(Ordering::SeqCst) != gen {
                    return;
                }
                beat(&mut last);
            }
        });
}

/// Long-polls the hub for this process's control document and hands each new version to
/// `apply(body) -> version` in Python.
pub fn start_control(ep: Endpoint, run_id: String, apply: Py<PyAny>) {
    STOP.store(false, Ordering::SeqCst);
    let gen = CTL_GEN.fetch_add(1, Ordering::SeqCst) + 1;
    let _ = std::thread::Builder::new()
        .name("sightline-control".into())
        .spawn(move || {
            let mut client = Client::new(ep, Duration::from_secs(40));
            let mut version: i64 = -1;
            let path_base = format!("/api/v1/processes/{}/control", url_escape(&run_id));
            loop {
                if STOP.load(Ordering::SeqCst) || CTL_GEN.load(Ordering::SeqCst) != gen {
                    return;
                }
                let wait = if version < 0 { 0 } else { 25 };
                let path = format!("{path_base}?version={}&wait_s={wait}", version.max(0));
                match client.request("GET", &path, None, b"") {
                    Ok(r) if r.status == 200 => {
                        if STOP.load(Ordering::SeqCst) || CTL_GEN.load(Ordering::SeqCst) != gen {
                            return;
                        }
                        let body = String::from_utf8_lossy(&r.body).into_owned();
                        let applied = Python::try_attach(|py| -> Option<i64> {
                            match apply.call1(py, (body, version)) {
                                Ok(v) => v.extract::<i64>(py).ok(),
                                Err(e) => {
                                    e.print(py);
                                    None
                                }
                            }
                        })
                        .flatten();
                        match applied {
                            Some(v) => version = v,
                            None => nap(Duration::from_secs(3)),
                        }
                    }
                    // Not reachable, or the hub does not have the endpoint (yet): retry later.
                    _ => nap(Duration::from_secs(3)),
                }
            }
        });
}

fn url_escape(s: &str) -> String {
    let mut o = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
            o.push(b as char);
        } else {
            let _ = write!(o, "%{:02X}", b);
        }
    }
    o
}
