//! `sightline._native`: the Rust half of the sightline Python agent. It exposes to the Python
//! package the tracing callbacks (`sys.monitoring` on 3.12+, a C profile function on 3.11), the
//! configuration knobs, and the transport (queue, sender, heartbeat, live control).
//!
//! Nothing here may raise into or block the traced program: callbacks swallow their own errors,
//! and every network wait happens on Rust threads without the GIL.

mod background;
mod clock;
mod fork;
mod http;
mod json;
mod spool;
mod summary;
mod tls;
mod tracer;
mod transport;
mod ws;

use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::ffi::CStr;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tracer::{Exit, Verdict};

// --- sys.monitoring callbacks (3.12+) ------------------------------------------------------
//
// Plain METH_FASTCALL C functions rather than #[pyfunction]s: they run twice per traced call,
// and skipping the generic argument parsing halves the cost of the call into Rust. They must
// never unwind into CPython, so each body runs under catch_unwind.

type Fast = unsafe extern "C" fn(
    *mut ffi::PyObject,
    *mut *mut ffi::PyObject,
    ffi::Py_ssize_t,
) -> *mut ffi::PyObject;

/// Returns a new reference to None or to `sys.monitoring.DISABLE`.
unsafe fn answer(v: Verdict) -> *mut ffi::PyObject {
    let p = match v {
        Verdict::Continue => ffi::Py_None(),
        Verdict::Disable => tracer::disable_ptr(),
    };
    ffi::Py_INCREF(p);
    p
}

macro_rules! callback {
    ($name:ident, $nargs:expr, |$py:ident, $code:ident, $args:ident| $body:expr) => {
        unsafe extern "C" fn $name(
            _slf: *mut ffi::PyObject,
            $args: *mut *mut ffi::PyObject,
            nargs: ffi::Py_ssize_t,
        ) -> *mut ffi::PyObject {
            if nargs < $nargs {
                return answer(Verdict::Continue);
            }
            let r = std::panic::catch_unwind(|| {
                let $py = Python::assume_attached();
                let $code = *$args;
                $body
            });
            answer(r.unwrap_or(Verdict::Continue))
        }
    };
}

callback!(cb_start, 2, |py, code, _a| tracer::on_start(
    py,
    code,
    std::ptr::null_mut(),
    false
));
callback!(cb_resume, 2, |py, code, _a| tracer::on_start(
    py,
    code,
    std::ptr::null_mut(),
    true
));
// `gen.throw()` resumes a generator with an exception; PY_THROW cannot be disabled.
callback!(cb_throw, 3, |py, code, _a| {
    tracer::on_start(py, code, std::ptr::null_mut(), true);
    Verdict::Continue
});
callback!(cb_return, 3, |py, code, a| tracer::on_exit(
    py,
    code,
    Exit::Return,
    *a.add(2)
));
callback!(cb_yield, 3, |py, code, a| tracer::on_exit(
    py,
    code,
    Exit::Yield,
    *a.add(2)
));
// PY_UNWIND cannot be disabled: always answer None.
callback!(cb_unwind, 3, |py, code, a| {
    tracer::on_exit(py, code, Exit::Unwind, *a.add(2));
    Verdict::Continue
});

fn add_fastcall(m: &Bound<'_, PyModule>, name: &'static CStr, f: Fast) -> PyResult<()> {
    // The definition must outlive the function object: leak it (six, once per import).
    let def = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth: ffi::PyMethodDefPointer { PyCFunctionFast: f },
        ml_flags: ffi::METH_FASTCALL,
        ml_doc: c"sightline sys.monitoring callback".as_ptr(),
    }));
    // SAFETY: def is 'static; PyCFunction_NewEx returns a new reference or NULL with an error.
    let obj = unsafe {
        let p = ffi::PyCFunction_NewEx(def, std::ptr::null_mut(), std::ptr::null_mut());
        Bound::from_owned_ptr_or_err(m.py(), p)?
    };
    m.add(name.to_str().expect("ascii name"), obj)
}

// --- 3.11 profile hook -------------------------------------------------------------------------

/// Installs (or removes) the C profile function on every existing thread (3.11 only).
#[pyfunction]
fn profile_all_threads(on: bool) -> PyResult<()> {
    #[cfg(not(Py_3_12))]
    {
        tracer::profile311::set_all_threads(on);
        Ok(())
    }
    #[cfg(Py_3_12)]
    {
        let _ = on;
        Err(PyValueError::new_err(
            "the C profile hook is for Python 3.11; use sys.monitoring",
        ))
    }
}

/// For `threading.setprofile`: the first profile event of a new thread swaps this Python-level
/// hook for the C profile function (3.11 only).
#[pyfunction]
fn thread_bootstrap(
    _frame: &Bound<'_, PyAny>,
    _event: &Bound<'_, PyAny>,
    _arg: &Bound<'_, PyAny>,
) -> PyResult<()> {
    #[cfg(not(Py_3_12))]
    tracer::profile311::set_this_thread();
    Ok(())
}

// --- set-up ---------------------------------------------------------------------------------

#[pyfunction]
#[pyo3(signature = (run_id, host, pid, main_tid, parent_session_id, classify, on_exception, disable=None))]
#[allow(
    clippy::too_many_arguments,
    reason = "the Python-facing signature of `_native.install`, called by sightline/_agent.py"
)]
fn install(
    run_id: String,
    host: String,
    pid: u32,
    main_tid: u64,
    parent_session_id: Option<String>,
    classify: Py<PyAny>,
    on_exception: Py<PyAny>,
    disable: Option<Py<PyAny>>,
) {
    tracer::install(
        tracer::Ident {
            run_id,
            host,
            pid,
            main_tid,
            parent_session_id,
        },
        tracer::Config::default(),
        classify,
        on_exception,
        disable,
    );
}

#[pyfunction]
#[pyo3(signature = (min_duration_ms=0.0, max_detail_per_s=1000.0, capture_args=true, capture_repr=false, refilter=false))]
fn configure(
    min_duration_ms: f64,
    max_detail_per_s: f64,
    capture_args: bool,
    capture_repr: bool,
    refilter: bool,
) -> PyResult<()> {
    let valid = |v: f64| v.is_finite() && v >= 0.0;
    if !valid(min_duration_ms) || !valid(max_detail_per_s) {
        return Err(PyValueError::new_err(
            "min_duration_ms and max_detail_per_s must be numbers >= 0",
        ));
    }
    tracer::set_config(
        tracer::Config {
            min_duration_ns: (min_duration_ms * 1e6) as u64,
            max_detail_per_s,
            capture_args,
            capture_repr,
        },
        refilter,
    );
    Ok(())
}

#[pyfunction]
fn set_active(on: bool) {
    tracer::ACTIVE.store(on, Ordering::SeqCst);
    if !on {
        tracer::reset_thread_stacks();
    }
}

/// Records the innermost traced call as the creator of a coroutine about to become a task
/// (called by the agent's `loop.create_task` wrapper with the coroutine's `cr_frame`).
#[pyfunction]
fn adopt(frame: &Bound<'_, PyAny>) {
    // SAFETY: a type check on a live object we hold a reference to.
    if unsafe { ffi::PyFrame_Check(frame.as_ptr()) } != 0 {
        tracer::adopt(frame.as_ptr().cast());
    }
}

#[pyfunction]
fn is_active() -> bool {
    tracer::ACTIVE.load(Ordering::SeqCst)
}

// --- transport ------------------------------------------------------------------------------

#[pyfunction]
#[pyo3(signature = (url=None, token=None, file=None, cap_detail=50_000, cap_critical=100_000, via="auto", spool_dir=None, ca_file=None))]
#[allow(
    clippy::too_many_arguments,
    reason = "the keyword arguments of a Python function, each with its default"
)]
fn transport_configure(
    py: Python<'_>,
    url: Option<String>,
    token: Option<String>,
    file: Option<String>,
    cap_detail: usize,
    cap_critical: usize,
    via: &str,
    spool_dir: Option<String>,
    ca_file: Option<String>,
) -> PyResult<()> {
    let via = transport::Via::parse(via).ok_or_else(|| {
        PyValueError::new_err(format!("transport {via:?} is not one of auto, ws, http"))
    })?;
    let sink = match (file, url) {
        (Some(f), _) => transport::Sink::File(f.into()),
        (None, Some(u)) => transport::Sink::Hub(endpoint(py, &u, token, ca_file)?, via),
        (None, None) => return Err(PyValueError::new_err("either url or file is required")),
    };
    // Lists the spool directory (no reading): without the GIL all the same.
    py.detach(|| {
        transport::global().configure(sink, cap_detail, cap_critical, spool_dir.map(Into::into))
    });
    Ok(())
}

/// Parses a hub URL and reads the CA file, if any, without the GIL (the system's CAs are read
/// later, by the first TLS connection). A bad URL or CA file is a `ValueError` saying what to
/// change.
fn endpoint(
    py: Python<'_>,
    url: &str,
    token: Option<String>,
    ca_file: Option<String>,
) -> PyResult<http::Endpoint> {
    let ca_file = ca_file
        .filter(|c| !c.is_empty())
        .map(std::path::PathBuf::from);
    py.detach(|| http::Endpoint::parse(url, token, ca_file.as_deref()))
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

/// Queues one serialized event (one JSON object, no newline).
#[pyfunction]
#[pyo3(signature = (line, droppable=false))]
fn emit(line: String, droppable: bool) {
    transport::global().push(line, droppable);
}

/// Waits (without the GIL) until the queue is delivered or the timeout passes; returns the
/// number of events still undelivered.
#[pyfunction]
fn flush(py: Python<'_>, timeout_s: f64) -> usize {
    // Clamped to a year (a deadline past that would overflow the clock): `flush(float('inf'))`
    // waits as long as it takes and NaN does not wait; neither panics into Python.
    let t = Duration::try_from_secs_f64(timeout_s.clamp(0.0, 31_536_000.0)).unwrap_or_default();
    py.detach(|| transport::global().flush(t))
}

#[pyfunction]
fn drain() -> Vec<String> {
    transport::global()
        .drain()
        .into_iter()
        .map(|(l, _)| l)
        .collect()
}

/// At exit: stops delivering earlier spool files (what is left of the one in progress goes
/// back for the next process), then spools what the hub did not take to
/// `SPOOL_DIR/python-RUN.ndjson` (0600, within the spool's cap). Returns (path or None,
/// events written, events that did not fit); raises OSError when the file cannot be written.
#[pyfunction]
fn spool_at_exit(py: Python<'_>, run_id: String) -> PyResult<(Option<String>, usize, usize)> {
    py.detach(|| {
        let t = transport::global();
        t.release_spool();
        let events = t.drain();
        if events.is_empty() {
            return Ok((None, 0, 0));
        }
        let Some(dir) = t.spool_dir() else {
            return Ok((None, 0, events.len()));
        };
        spool::write_exit_spool(&dir, &run_id, &events)
            .map(|s| (s.path.map(|p| p.display().to_string()), s.written, s.lost))
    })
    .map_err(PyErr::from)
}

/// Builds and queues the heartbeat and per-function statistics now.
#[pyfunction]
fn beat_now(py: Python<'_>) {
    py.detach(|| {
        let mut last = None;
        background::beat(&mut last);
    });
}

#[pyfunction]
fn start_heartbeat(interval_s: f64) {
    background::start_heartbeat(
        Duration::try_from_secs_f64(interval_s.clamp(0.05, 86_400.0))
            .unwrap_or(Duration::from_secs(1)),
    );
}

#[pyfunction]
#[pyo3(signature = (url, token, run_id, apply, ca_file=None))]
fn start_control(
    py: Python<'_>,
    url: String,
    token: Option<String>,
    run_id: String,
    apply: Py<PyAny>,
    ca_file: Option<String>,
) -> PyResult<()> {
    let ep = endpoint(py, &url, token, ca_file)?;
    background::start_control(ep, run_id, apply);
    Ok(())
}

#[pyfunction]
fn stop_background() {
    background::stop();
}

/// Counters: calls, detailed events, transport state, and per-function aggregates.
#[pyfunction]
fn stats<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let t = transport::global().stats();
    tracer::request_publish();
    let (calls, skipped) = tracer::counters();
    d.set_item("calls", calls)?;
    d.set_item("detail_skipped", skipped)?;
    d.set_item("queued", t.queued)?;
    d.set_item("sent", t.sent)?;
    d.set_item("dropped", t.dropped)?;
    d.set_item("rejected", t.rejected)?;
    d.set_item("retries", t.retries)?;
    d.set_item("last_error", t.last_error)?;
    d.set_item("transport", t.transport)?;
    if let Some(r) = tracer::registry().as_ref() {
        d.set_item("detail_sent", r.detail_sent)?;
        d.set_item("functions", r.metas.iter().filter(|m| m.traced).count())?;
    }
    Ok(d)
}

/// RFC 3339 timestamp of now, from the same clock as call events.
#[pyfunction]
fn now_rfc3339() -> String {
    clock::rfc3339_ms(clock::wall_ns_now())
}

/// Whether a variable name or string value would be redacted (shared with the Python side so
/// both redact alike).
#[pyfunction]
fn is_secret(name: Option<&str>, value: Option<&str>) -> bool {
    name.is_some_and(summary::is_secret_name) || value.is_some_and(summary::is_secret_value)
}

/// `os.register_at_fork(before=...)`: takes the agent's locks.
#[pyfunction]
fn prepare_fork() {
    fork::prepare();
}

/// `os.register_at_fork(after_in_parent=...)`.
#[pyfunction]
fn after_fork_parent() {
    fork::after_parent();
}

/// `os.register_at_fork(after_in_child=...)`: releases the locks and resets the child.
#[pyfunction]
fn after_fork_child() {
    fork::after_child();
}

#[pyfunction]
fn proc_sample() -> Option<(f64, u64, u64)> {
    background::proc_sample()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("MONITORING", cfg!(Py_3_12))?;
    m.add("BUILT_FOR", {
        // SAFETY: Py_GetVersion returns a static NUL-terminated string.
        let v = unsafe { std::ffi::CStr::from_ptr(ffi::Py_GetVersion()) };
        v.to_string_lossy()
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string()
    })?;
    add_fastcall(m, c"py_start", cb_start)?;
    add_fastcall(m, c"py_resume", cb_resume)?;
    add_fastcall(m, c"py_throw", cb_throw)?;
    add_fastcall(m, c"py_return", cb_return)?;
    add_fastcall(m, c"py_yield", cb_yield)?;
    add_fastcall(m, c"py_unwind", cb_unwind)?;
    m.add_function(wrap_pyfunction!(profile_all_threads, m)?)?;
    m.add_function(wrap_pyfunction!(thread_bootstrap, m)?)?;
    m.add_function(wrap_pyfunction!(install, m)?)?;
    m.add_function(wrap_pyfunction!(configure, m)?)?;
    m.add_function(wrap_pyfunction!(set_active, m)?)?;
    m.add_function(wrap_pyfunction!(is_active, m)?)?;
    m.add_function(wrap_pyfunction!(adopt, m)?)?;
    m.add_function(wrap_pyfunction!(transport_configure, m)?)?;
    m.add_function(wrap_pyfunction!(emit, m)?)?;
    m.add_function(wrap_pyfunction!(flush, m)?)?;
    m.add_function(wrap_pyfunction!(drain, m)?)?;
    m.add_function(wrap_pyfunction!(spool_at_exit, m)?)?;
    m.add_function(wrap_pyfunction!(beat_now, m)?)?;
    m.add_function(wrap_pyfunction!(start_heartbeat, m)?)?;
    m.add_function(wrap_pyfunction!(start_control, m)?)?;
    m.add_function(wrap_pyfunction!(stop_background, m)?)?;
    m.add_function(wrap_pyfunction!(stats, m)?)?;
    m.add_function(wrap_pyfunction!(now_rfc3339, m)?)?;
    m.add_function(wrap_pyfunction!(is_secret, m)?)?;
    m.add_function(wrap_pyfunction!(proc_sample, m)?)?;
    m.add_function(wrap_pyfunction!(prepare_fork, m)?)?;
    m.add_function(wrap_pyfunction!(after_fork_parent, m)?)?;
    m.add_function(wrap_pyfunction!(after_fork_child, m)?)?;
    Ok(())
}
