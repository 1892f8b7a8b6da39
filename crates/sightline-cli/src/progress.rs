//! A one-line progress bar on stderr for the long client commands (`replay`, `import`,
//! `export`), drawn only when stderr is a terminal.
//!
//! It must never write anything when stderr is not a terminal (a pipe, a file, a test, CI),
//! so that redirected output and logs hold only what they held before; and never slow the
//! work it follows: it redraws at most ten times a second.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Redraws at most this often: enough to look alive, cheap beside any network call.
const REDRAW: Duration = Duration::from_millis(100);
/// The bar's width in cells (a line of 80 columns holds it with the counts).
const WIDTH: usize = 30;

/// What is counted.
#[derive(Debug, Clone, Copy)]
pub enum Unit {
    Events,
    Bytes,
}

pub struct Progress {
    label: &'static str,
    unit: Unit,
    total: Option<u64>,
    done: u64,
    /// `None` when stderr is not a terminal: every method is then a no-op.
    drawn: Option<Instant>,
    started: Instant,
}

impl Progress {
    /// A bar for `total` units (`None`: unknown, shows a count only).
    pub fn new(label: &'static str, unit: Unit, total: Option<u64>) -> Progress {
        Progress::with_terminal(label, unit, total, std::io::stderr().is_terminal())
    }

    fn with_terminal(label: &'static str, unit: Unit, total: Option<u64>, tty: bool) -> Progress {
        let now = Instant::now();
        Progress {
            label,
            unit,
            total,
            done: 0,
            // In the past, so the first `add` draws at once.
            drawn: tty.then(|| now.checked_sub(REDRAW).unwrap_or(now)),
            started: now,
        }
    }

    pub fn add(&mut self, n: u64) {
        self.done = self.done.saturating_add(n);
        if let Some(last) = self.drawn
            && last.elapsed() >= REDRAW
        {
            self.draw();
        }
    }

    fn amount(&self, n: u64) -> String {
        match self.unit {
            Unit::Events => n.to_string(),
            Unit::Bytes if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1 << 20)),
            Unit::Bytes if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
            Unit::Bytes => format!("{n} B"),
        }
    }

    fn line(&self) -> String {
        let unit = match self.unit {
            Unit::Events => " events",
            Unit::Bytes => "",
        };
        let secs = self.started.elapsed().as_secs();
        match self.total.filter(|t| *t > 0) {
            Some(total) => {
                let frac = (self.done as f64 / total as f64).clamp(0.0, 1.0);
                let filled = (frac * WIDTH as f64).round() as usize;
                format!(
                    "{} [{}{}] {:>3}% {}/{}{unit} {secs}s",
                    self.label,
                    "#".repeat(filled),
                    "-".repeat(WIDTH - filled),
                    (frac * 100.0).floor() as u64,
                    self.amount(self.done),
                    self.amount(total),
                )
            }
            None => format!("{} {}{unit} {secs}s", self.label, self.amount(self.done)),
        }
    }

    fn draw(&mut self) {
        let line = self.line();
        let mut err = std::io::stderr().lock();
        // `\r` and clear-to-end-of-line: the bar redraws in place.
        let _ = write!(err, "\r{line}\x1b[K");
        let _ = err.flush();
        self.drawn = Some(Instant::now());
    }

    /// Removes the bar, leaving the line empty for the command's own summary.
    pub fn finish(&mut self) {
        if self.drawn.take().is_some() {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A reader that counts what passes through it into a progress bar.
pub struct Counting<'a, R> {
    pub inner: R,
    pub progress: &'a mut Progress,
}

impl<R: std::io::Read> std::io::Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.add(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_the_terminal_it_never_draws() {
        let mut p = Progress::with_terminal("import", Unit::Bytes, Some(10), false);
        p.add(5);
        assert!(p.drawn.is_none());
    }

    #[test]
    fn lines_show_fraction_and_amounts() {
        let mut p = Progress::with_terminal("replay", Unit::Events, Some(200), false);
        p.done = 50;
        let line = p.line();
        assert!(line.starts_with("replay ["), "{line}");
        assert!(line.contains(" 25% 50/200 events"), "{line}");
        let mut p = Progress::with_terminal("export", Unit::Bytes, None, false);
        p.done = 3 << 20;
        assert!(p.line().contains("export 3.0 MiB"), "{}", p.line());
        // More than the total (a file that grew) stays at 100%.
        let mut p = Progress::with_terminal("import", Unit::Bytes, Some(10), false);
        p.done = 20;
        assert!(p.line().contains("100%"), "{}", p.line());
    }
}
