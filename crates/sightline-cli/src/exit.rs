//! Exit codes and how errors are shown: one line that says what went wrong and what to do.

use std::fmt;

pub const CONFIG: i32 = 2;
pub const ADAPTER: i32 = 3;
pub const PORT_IN_USE: i32 = 4;

/// An error that carries its exit code.
#[derive(Debug)]
pub struct Exit {
    pub code: i32,
    pub message: String,
}

impl Exit {
    pub fn config(message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Exit {
            code: CONFIG,
            message: message.into(),
        })
    }

    pub fn port_in_use(message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Exit {
            code: PORT_IN_USE,
            message: message.into(),
        })
    }

    pub fn adapter(message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Exit {
            code: ADAPTER,
            message: message.into(),
        })
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// Prints the error and returns its exit code (1 when it carries none).
pub fn report(error: &anyhow::Error) -> i32 {
    eprintln!("sightline: {error:#}");
    error.downcast_ref::<Exit>().map_or(1, |e| e.code)
}
