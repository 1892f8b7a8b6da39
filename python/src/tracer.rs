//! The tracing hot path: per-thread shadow call stacks fed by `sys.monitoring` callbacks
//! (Python 3.12+) or a C-level profile function (3.11), per-function aggregates that stay
//! complete whatever is sampled, and detailed `call` events built in Rust for the calls that
//! pass the minimum duration and the per-second cap.
//!
//! Rules this module keeps:
//! - It never calls `repr` or other user code on the hot path; Python is called only on slow
//!   paths (first sight of a code object, exceptions, `repr` when asked for), with the thread
//!   marked busy so that the tracer ignores the calls that code makes.
//! - It never holds one of its locks while Python code may run: Python code can hand the GIL to
//!   another thread, whose callbacks would then wait for that lock while holding the GIL.
//! - It never lets an error escape into the traced program: failures are counted, not raised.

use crate::clock;
use crate::json;
use crate::summary;
use crate::transport;
use pyo3::ffi;
use pyo3::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

// ---------------------------------------------------------------------------------------------
// A tiny Fx-style hasher: keys are pointers, so a multiply is as good as SipHash and far cheaper.

#[derive(Default, Clone, Copy)]
pub struct PtrHasher(u64);

impl Hasher for PtrHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(5) ^ *b as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64 ^ (n as u64 >> 17)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type PtrMap<V> = HashMap<usize, V, BuildHasherDefault<PtrHasher>>;

// ---------------------------------------------------------------------------------------------
// Configuration and identity.

#[derive(Clone, Debug)]
pub struct Config {
    /// Calls shorter than this are aggregated but not sent as detailed events.
    pub min_duration_ns: u64,
    /// Detailed call events per second, process-wide; 0 means no cap.
    pub max_detail_per_s: f64,
    /// Summarise arguments and return values of detailed calls.
    pub capture_args: bool,
    /// Use `repr` (truncated) instead of the built-in summary for detailed calls.
    pub capture_repr: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            min_duration_ns: 0,
            max_detail_per_s: 1000.0,
            capture_args: true,
            capture_repr: false,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Ident {
    pub run_id: String,
    pub host: String,
    pub pid: u32,
    pub main_tid: u64,
    pub parent_session_id: Option<String>,
}

impl Ident {
    pub fn session_for(&self, tid: u64) -> String {
        if tid == self.main_tid {
            format!("{}:main", self.run_id)
        } else {
            format!("{}:t{}", self.run_id, tid)
        }
    }
    /// Opens an event's JSON object with the fields every agent event shares: `ts`, `source`,
    /// `source_event`, `run_id`, `session_id` (and `parent_session_id`) of thread `tid`,
    /// `entity_type`, `entity_id`, `title`, `pid` and `host`. The caller adds the rest and
    /// closes the object.
    #[allow(
        clippy::too_many_arguments,
        reason = "the event head's fields, written in order into one buffer with no intermediate value on the hot path"
    )]
    pub fn write_head(
        &self,
        o: &mut String,
        first: &mut bool,
        ts: &str,
        source_event: &str,
        tid: u64,
        entity_type: &str,
        entity_id: &str,
        title: &str,
    ) {
        o.push('{');
        json::key(o, first, "ts");
        json::push_str(o, ts);
        json::key(o, first, "source");
        o.push_str("\"python\"");
        json::key(o, first, "source_event");
        json::push_str(o, source_event);
        json::key(o, first, "run_id");
        json::push_str(o, &self.run_id);
        json::key(o, first, "session_id");
        json::push_str(o, &self.session_for(tid));
        if let Some(p) = self.parent_session_for(tid) {
            json::key(o, first, "parent_session_id");
            json::push_str(o, &p);
        }
        json::key(o, first, "entity_type");
        json::push_str(o, entity_type);
        json::key(o, first, "entity_id");
        json::push_str(o, entity_id);
        json::key(o, first, "title");
        json::push_str(o, title);
        json::key(o, first, "pid");
        let _ = write!(o, "{}", self.pid);
        json::key(o, first, "host");
        json::push_str(o, &self.host);
    }

    pub fn parent_session_for(&self, tid: u64) -> Option<String> {
        if tid == self.main_tid {
            self.parent_session_id.clone()
        } else {
            Some(format!("{}:main", self.run_id))
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Function,
    Generator,
    Coroutine,
    AsyncGenerator,
}

impl Kind {
    fn from_flags(flags: i64) -> Kind {
        // CO_GENERATOR 0x20, CO_COROUTINE 0x80, CO_ITERABLE_COROUTINE 0x100, CO_ASYNC_GENERATOR 0x200
        if flags & 0x200 != 0 {
            Kind::AsyncGenerator
        } else if flags & 0x180 != 0 {
            Kind::Coroutine
        } else if flags & 0x20 != 0 {
            Kind::Generator
        } else {
            Kind::Function
        }
    }
    fn name(self) -> &'static str {
        match self {
            Kind::Function => "function",
            Kind::Generator => "generator",
            Kind::Coroutine => "coroutine",
            Kind::AsyncGenerator => "async_generator",
        }
    }
    fn suspends(self) -> bool {
        self != Kind::Function
    }
}

/// What the tracer knows about one code object. Immutable once made.
pub struct CodeMeta {
    /// Keeps the code object alive so that its address, our key, is never reused.
    _code: Py<PyAny>,
    pub traced: bool,
    pub kind: Kind,
    pub qualname: String,
    pub module: String,
    pub file: String,
    pub line: u32,
    /// Argument names (positional, keyword-only, *args, **kwargs), as Python strings owned by
    /// the code object, for `PyFrame_GetVar`.
    pub argnames: Vec<(String, Py<PyAny>)>,
    /// 3.11 only: bytecode offsets of YIELD_VALUE, to tell a yield from a return.
    #[cfg_attr(
        Py_3_12,
        allow(
            dead_code,
            reason = "classify fills it on every version; only the 3.11 profile hook reads it"
        )
    )]
    pub yield_offsets: Vec<i32>,
}

impl CodeMeta {
    /// `module.qualname`, the entity id of the function's events.
    pub fn qualified(&self) -> String {
        if self.module.is_empty() {
            self.qualname.clone()
        } else {
            format!("{}.{}", self.module, self.qualname)
        }
    }
}

/// Aggregates for one function.
#[derive(Clone, Default, Debug)]
pub struct FnStats {
    pub count: u64,
    pub errors: u64,
    pub total_ns: u64,
    pub min_ns: u64,
    pub max_ns: u64,
    /// <1µs, <10µs, <100µs, <1ms, <10ms, <100ms, <1s, ≥1s
    pub buckets: [u64; 8],
}

pub const BUCKET_LABELS: [&str; 8] = [
    "lt_1us", "lt_10us", "lt_100us", "lt_1ms", "lt_10ms", "lt_100ms", "lt_1s", "ge_1s",
];

impl FnStats {
    #[inline]
    fn record(&mut self, ns: u64, failed: bool) {
        if self.count == 0 || ns < self.min_ns {
            self.min_ns = ns;
        }
        if ns > self.max_ns {
            self.max_ns = ns;
        }
        self.count += 1;
        self.total_ns += ns;
        if failed {
            self.errors += 1;
        }
        let b = match ns {
            0..1_000 => 0,
            1_000..10_000 => 1,
            10_000..100_000 => 2,
            100_000..1_000_000 => 3,
            1_000_000..10_000_000 => 4,
            10_000_000..100_000_000 => 5,
            100_000_000..1_000_000_000 => 6,
            _ => 7,
        };
        self.buckets[b] += 1;
    }

    fn merge(&mut self, o: &FnStats) {
        if o.count == 0 {
            return;
        }
        if self.count == 0 || o.min_ns < self.min_ns {
            self.min_ns = o.min_ns;
        }
        self.max_ns = self.max_ns.max(o.max_ns);
        self.count += o.count;
        self.errors += o.errors;
        self.total_ns += o.total_ns;
        for i in 0..8 {
            self.buckets[i] += o.buckets[i];
        }
    }
}

/// Per-thread deltas since the last flush, indexed by code index.
#[derive(Default)]
pub struct ThreadStats {
    pub fns: Vec<FnStats>,
    pub touched: Vec<u32>,
    /// Calls completed on this thread (cumulative).
    pub calls: u64,
    /// Of those, calls not sent as detailed events (cumulative).
    pub skipped: u64,
}

/// One activation on a shadow stack (or, for a suspended generator, waiting to resume).
struct Frame {
    code: usize,
    idx: u32,
    kind: Kind,
    call_id: u64,
    parent_id: u64,
    depth: u32,
    start_ns: u64,
    seg_start_ns: u64,
    active_ns: u64,
    resumes: u32,
    gen_key: usize,
    /// Started before tracing began (a resumed generator we never saw start).
    partial: bool,
    /// JSON object of argument summaries, when the call may become a detailed event.
    args: Option<String>,
}

/// Global state behind one mutex; touched on slow paths only (first sight of a code object,
/// generator suspension, detailed events, flushes).
pub struct Registry {
    pub cfg: Config,
    pub ident: Arc<Ident>,
    index: PtrMap<u32>,
    pub metas: Vec<Arc<CodeMeta>>,
    suspended: PtrMap<Frame>,
    /// Coroutines handed to an event loop (`loop.create_task`) that have not started yet, by
    /// frame address: the call that created each, which becomes its parent when the loop
    /// starts it (otherwise the parent would be whatever frame runs the loop).
    adopted: PtrMap<Adoption>,
    threads: Vec<Arc<Mutex<ThreadStats>>>,
    pub totals: Vec<FnStats>,
    classify: Option<Py<PyAny>>,
    on_exception: Option<Py<PyAny>>,
    pub detail_sent: u64,
}

/// Who created a not-yet-started coroutine (see `Registry::adopted`).
struct Adoption {
    /// The coroutine's code: a recycled frame address with other code is not a match.
    code: usize,
    tid: u64,
    parent_id: u64,
    depth: u32,
}

/// More coroutines than this waiting to start (tasks created and never run) and the oldest
/// knowledge is dropped: those coroutines get the loop's frame as parent, as without adoption.
const MAX_ADOPTED: usize = 10_000;

/// Entries in `Registry::adopted`; read without the lock so coroutine starts stay lock-free
/// when no task is pending.
static ADOPTED: AtomicUsize = AtomicUsize::new(0);

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);
/// Tracing on/off, read on every event.
pub static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Bumped when filters change: threads then forget their cached decisions.
static EPOCH: AtomicU64 = AtomicU64::new(1);
static NEXT_CALL: AtomicU64 = AtomicU64::new(1);
/// Bumped when tracing is switched off: every thread then drops its shadow stack, whose
/// frames will return unseen.
static STACK_EPOCH: AtomicU64 = AtomicU64::new(0);
/// Bumped by each heartbeat: threads publish their statistics at their next call.
static FLUSH_EPOCH: AtomicU64 = AtomicU64::new(0);
/// GCRA rate limiter for detailed events: the theoretical arrival time, in mono ns.
static DETAIL_TAT: AtomicU64 = AtomicU64::new(0);
static DETAIL_INTERVAL_NS: AtomicU64 = AtomicU64::new(1_000_000);
static MIN_DURATION_NS: AtomicU64 = AtomicU64::new(0);
static CAPTURE_ARGS: AtomicBool = AtomicBool::new(true);
static CAPTURE_REPR: AtomicBool = AtomicBool::new(false);
/// `sys.monitoring.DISABLE`, a strong reference leaked on purpose (it is immortal anyway).
static DISABLE: AtomicPtr<ffi::PyObject> = AtomicPtr::new(std::ptr::null_mut());

pub fn registry() -> MutexGuard<'static, Option<Registry>> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

struct ThreadState {
    busy: bool,
    epoch: u64,
    tid: u64,
    cache: PtrMap<(u32, bool, Kind)>,
    stack: Vec<Frame>,
    /// Statistics since this thread last published, owned by the thread: no lock per call.
    local: ThreadStats,
    /// Where the thread publishes them (read by the heartbeat), when `FLUSH_EPOCH` moves.
    stats: Arc<Mutex<ThreadStats>>,
    flush_epoch: u64,
    /// The last exception reported from this thread (by address), for exceptions the tracer
    /// cannot mark (see `exc_identity`): one unwinding through several traced frames is then
    /// reported once, unless a new one took its address.
    last_exc: usize,
    next_id: u64,
    id_end: u64,
    stack_epoch: u64,
    /// 3.11: failed calls waiting for their exception's type (frame, tid, duration, end).
    #[cfg_attr(
        Py_3_12,
        allow(
            dead_code,
            reason = "3.12+ never arms the catch, so nothing is queued here or read back"
        )
    )]
    pending_failed: Vec<(Frame, u64, u64, u64)>,
}

thread_local! {
    static TS: RefCell<Option<ThreadState>> = const { RefCell::new(None) };
}

fn gettid() -> u64 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as u64 }
}

fn new_thread_state() -> ThreadState {
    let stats = Arc::new(Mutex::new(ThreadStats::default()));
    if let Some(r) = registry().as_mut() {
        r.threads.push(Arc::clone(&stats));
    }
    ThreadState {
        busy: false,
        epoch: 0,
        tid: gettid(),
        cache: PtrMap::default(),
        stack: Vec::with_capacity(64),
        stats,
        local: ThreadStats::default(),
        flush_epoch: FLUSH_EPOCH.load(Ordering::Relaxed),
        last_exc: 0,
        next_id: 0,
        id_end: 0,
        stack_epoch: STACK_EPOCH.load(Ordering::Relaxed),
        pending_failed: Vec::new(),
    }
}

/// Runs `f` with this thread's state, unless the thread is busy inside the tracer (then the
/// event is ignored and `None` returned).
#[inline]
fn with_ts<R>(f: impl FnOnce(&mut ThreadState) -> R) -> Option<R> {
    TS.try_with(|cell| {
        let mut b = cell.try_borrow_mut().ok()?;
        let ts = b.get_or_insert_with(new_thread_state);
        if ts.busy {
            return None;
        }
        let se = STACK_EPOCH.load(Ordering::Relaxed);
        if ts.stack_epoch != se {
            ts.stack.clear();
            ts.stack_epoch = se;
        }
        Some(f(ts))
    })
    .ok()
    .flatten()
}

/// Marks the thread busy while Python code runs on the tracer's behalf.
fn set_busy(v: bool) {
    let _ = TS.try_with(|cell| {
        if let Ok(mut b) = cell.try_borrow_mut() {
            if let Some(ts) = b.as_mut() {
                ts.busy = v;
            }
        }
    });
}

struct BusyGuard;
impl BusyGuard {
    fn new() -> BusyGuard {
        set_busy(true);
        BusyGuard
    }
}
impl Drop for BusyGuard {
    fn drop(&mut self) {
        set_busy(false);
    }
}

// ---------------------------------------------------------------------------------------------
// Set-up and control, called from `lib.rs`.

pub fn install(
    ident: Ident,
    cfg: Config,
    classify: Py<PyAny>,
    on_exception: Py<PyAny>,
    disable: Option<Py<PyAny>>,
) {
    clock::init();
    if let Some(d) = disable {
        DISABLE.store(d.into_ptr(), Ordering::Release);
    }
    let mut g = registry();
    match g.as_mut() {
        Some(r) => {
            r.ident = Arc::new(ident);
            r.classify = Some(classify);
            r.on_exception = Some(on_exception);
        }
        None => {
            *g = Some(Registry {
                cfg: Config::default(),
                ident: Arc::new(ident),
                index: PtrMap::default(),
                metas: Vec::new(),
                suspended: PtrMap::default(),
                adopted: PtrMap::default(),
                threads: Vec::new(),
                totals: Vec::new(),
                classify: Some(classify),
                on_exception: Some(on_exception),
                detail_sent: 0,
            })
        }
    }
    drop(g);
    set_config(cfg, false);
}

/// Applies a new configuration. `refilter` forgets every include/exclude decision made so far.
pub fn set_config(cfg: Config, refilter: bool) {
    MIN_DURATION_NS.store(cfg.min_duration_ns, Ordering::Relaxed);
    let interval = if cfg.max_detail_per_s > 0.0 {
        (1e9 / cfg.max_detail_per_s) as u64
    } else {
        0
    };
    DETAIL_INTERVAL_NS.store(interval, Ordering::Relaxed);
    CAPTURE_ARGS.store(cfg.capture_args, Ordering::Relaxed);
    CAPTURE_REPR.store(cfg.capture_repr, Ordering::Relaxed);
    let mut g = registry();
    if let Some(r) = g.as_mut() {
        r.cfg = cfg;
        if refilter {
            r.index.clear();
        }
    }
    drop(g);
    if refilter {
        EPOCH.fetch_add(1, Ordering::AcqRel);
    }
}

/// Burst allowance of the detail rate limiter: a second's worth.
const DETAIL_BURST_NS: u64 = 1_000_000_000;

/// Would a detailed event be allowed now? (Does not consume.)
#[inline]
fn detail_available(now: u64) -> bool {
    let interval = DETAIL_INTERVAL_NS.load(Ordering::Relaxed);
    interval == 0 || DETAIL_TAT.load(Ordering::Relaxed) <= now + DETAIL_BURST_NS
}

/// Takes one detailed-event token (GCRA).
fn detail_take(now: u64) -> bool {
    let interval = DETAIL_INTERVAL_NS.load(Ordering::Relaxed);
    if interval == 0 {
        return true;
    }
    let mut tat = DETAIL_TAT.load(Ordering::Relaxed);
    loop {
        let base = tat.max(now);
        if base > now + DETAIL_BURST_NS {
            return false;
        }
        match DETAIL_TAT.compare_exchange_weak(
            tat,
            base + interval,
            Ordering::AcqRel,
            Ordering::Relaxed,
        ) {
            Ok(_) => return true,
            Err(t) => tat = t,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Code classification (slow path).

const UNKNOWN: u32 = u32::MAX;

/// Looks up a code object in this thread's cache. Returns (index, traced, kind).
#[inline]
fn lookup(ts: &mut ThreadState, code: usize) -> Option<(u32, bool, Kind)> {
    let epoch = EPOCH.load(Ordering::Acquire);
    if ts.epoch != epoch {
        ts.cache.clear();
        ts.epoch = epoch;
    }
    ts.cache.get(&code).copied()
}

/// Classifies `code` through the Python `classify` callback (with the thread busy), records
/// it in the registry and returns (index, traced). `globals` may be null.
fn classify_slow(
    py: Python<'_>,
    code: *mut ffi::PyObject,
    globals: *mut ffi::PyObject,
) -> (u32, bool, Kind) {
    let key = code as usize;
    let classify = {
        let g = registry();
        let Some(r) = g.as_ref() else {
            return (UNKNOWN, false, Kind::Function);
        };
        if let Some(&i) = r.index.get(&key) {
            let m = &r.metas[i as usize];
            return (i, m.traced, m.kind);
        }
        match &r.classify {
            Some(c) => c.clone_ref(py),
            None => return (UNKNOWN, false, Kind::Function),
        }
    };
    // SAFETY: code is a live code object passed by the interpreter; globals is a live dict or
    // null. Both are borrowed for the duration of this call.
    let code_b = unsafe { Bound::from_borrowed_ptr(py, code) };
    let globals_b = if globals.is_null() {
        py.None().into_bound(py)
    } else {
        // SAFETY: globals is not null here, so a live dict (see above).
        unsafe { Bound::from_borrowed_ptr(py, globals) }
    };
    let meta = {
        let _busy = BusyGuard::new();
        build_meta(py, &code_b, &globals_b, &classify)
    };
    let meta = match meta {
        Ok(m) => m,
        Err(e) => {
            // A classification failure must not break the program: treat the code as untraced.
            e.print(py);
            CodeMeta {
                _code: code_b.clone().unbind(),
                traced: false,
                kind: Kind::Function,
                qualname: String::new(),
                module: String::new(),
                file: String::new(),
                line: 0,
                argnames: Vec::new(),
                yield_offsets: Vec::new(),
            }
        }
    };
    let traced = meta.traced;
    let kind = meta.kind;
    let mut g = registry();
    let Some(r) = g.as_mut() else {
        return (UNKNOWN, false, Kind::Function);
    };
    if let Some(&i) = r.index.get(&key) {
        let m = &r.metas[i as usize];
        return (i, m.traced, m.kind);
    }
    // Re-use the slot of an earlier classification of the same code object (the index is
    // cleared when filters change; the metas and their statistics stay).
    let existing = r
        .metas
        .iter()
        .position(|m| m._code.as_ptr() == code)
        .map(|i| i as u32);
    let idx = match existing {
        Some(i) => {
            let old = &r.metas[i as usize];
            if old.traced != traced {
                let mut m = meta;
                m.traced = traced;
                r.metas[i as usize] = Arc::new(m);
            }
            i
        }
        None => {
            r.metas.push(Arc::new(meta));
            r.totals.push(FnStats::default());
            (r.metas.len() - 1) as u32
        }
    };
    r.index.insert(key, idx);
    (idx, traced, kind)
}

fn build_meta(
    py: Python<'_>,
    code: &Bound<'_, PyAny>,
    globals: &Bound<'_, PyAny>,
    classify: &Py<PyAny>,
) -> PyResult<CodeMeta> {
    // classify(code, globals) -> (traced, module, qualname, file, line, flags, argnames, yield_offsets)
    let r = classify.call1(py, (code, globals))?;
    let r = r.bind(py);
    let traced: bool = r.get_item(0)?.extract()?;
    let module: String = r.get_item(1)?.extract()?;
    let qualname: String = r.get_item(2)?.extract()?;
    let file: String = r.get_item(3)?.extract()?;
    let line: u32 = r.get_item(4)?.extract()?;
    let flags: i64 = r.get_item(5)?.extract()?;
    let names = r.get_item(6)?;
    let mut argnames = Vec::new();
    for n in names.try_iter()? {
        let n = n?;
        argnames.push((n.extract::<String>()?, n.unbind()));
    }
    let yield_offsets: Vec<i32> = r.get_item(7)?.extract()?;
    Ok(CodeMeta {
        _code: code.clone().unbind(),
        traced,
        kind: Kind::from_flags(flags),
        qualname,
        module,
        file,
        line,
        argnames,
        yield_offsets,
    })
}

// ---------------------------------------------------------------------------------------------
// FFI not (or not uniformly) exposed by pyo3-ffi.

extern "C" {
    fn PyFrame_GetGlobals(frame: *mut ffi::PyFrameObject) -> *mut ffi::PyObject;
    #[cfg(Py_3_12)]
    fn PyFrame_GetVar(
        frame: *mut ffi::PyFrameObject,
        name: *mut ffi::PyObject,
    ) -> *mut ffi::PyObject;
    #[cfg(not(Py_3_12))]
    fn PyFrame_GetLocals(frame: *mut ffi::PyFrameObject) -> *mut ffi::PyObject;
    #[cfg(not(Py_3_12))]
    fn PyFrame_GetLasti(frame: *mut ffi::PyFrameObject) -> std::os::raw::c_int;
}

/// Summaries of the arguments of the frame now starting, as a JSON object.
fn capture_args(py: Python<'_>, frame: *mut ffi::PyFrameObject, idx: u32) -> Option<String> {
    if frame.is_null() {
        return None;
    }
    let meta = {
        let g = registry();
        Arc::clone(g.as_ref()?.metas.get(idx as usize)?)
    };
    let repr = CAPTURE_REPR.load(Ordering::Relaxed);
    let _busy = BusyGuard::new();
    let mut out = String::with_capacity(64);
    out.push('{');
    let mut first = true;
    #[cfg(not(Py_3_12))]
    // SAFETY: frame is the live frame being profiled.
    let locals = unsafe {
        let l = PyFrame_GetLocals(frame);
        if l.is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        Bound::from_owned_ptr(py, l)
    };
    for (name, pyname) in &meta.argnames {
        #[cfg(Py_3_12)]
        // SAFETY: frame is live; pyname is a str owned by the code object we keep alive.
        let v = unsafe {
            let v = PyFrame_GetVar(frame, pyname.as_ptr());
            if v.is_null() {
                ffi::PyErr_Clear();
                continue;
            }
            Bound::from_owned_ptr(py, v)
        };
        #[cfg(not(Py_3_12))]
        let v = match locals.get_item(pyname.bind(py)) {
            Ok(v) => v,
            Err(_) => continue,
        };
        json::key(&mut out, &mut first, name);
        if repr {
            summary::repr_json(&mut out, name, &v, 200);
        } else {
            summary::summarize_named(&mut out, name, &v);
        }
    }
    out.push('}');
    Some(out)
}

fn summarize_value(py: Python<'_>, v: *mut ffi::PyObject) -> String {
    let mut out = String::new();
    if v.is_null() {
        out.push_str("null");
        return out;
    }
    // SAFETY: v is a live object passed by the interpreter for the duration of the callback.
    let b = unsafe { Bound::from_borrowed_ptr(py, v) };
    if CAPTURE_REPR.load(Ordering::Relaxed) {
        let _busy = BusyGuard::new();
        summary::repr_json(&mut out, "return", &b, 200);
    } else {
        summary::summarize(&mut out, &b, 1);
    }
    out
}

fn type_name_of(v: *mut ffi::PyObject) -> String {
    if v.is_null() {
        return String::new();
    }
    // SAFETY: v is live; tp_name is a NUL-terminated string owned by its type.
    unsafe {
        std::ffi::CStr::from_ptr((*ffi::Py_TYPE(v)).tp_name)
            .to_string_lossy()
            .into_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// The events.

/// What a start/resume callback should answer.
#[derive(PartialEq, Eq)]
pub enum Verdict {
    Continue,
    Disable,
}

fn current_frame() -> *mut ffi::PyFrameObject {
    // SAFETY: called with the GIL held from a tracing callback; returns a borrowed frame.
    unsafe { ffi::PyEval_GetFrame() }
}

/// Call ids are handed to threads in blocks, so that taking one is not an atomic operation.
const ID_BLOCK: u64 = 4096;

#[inline]
fn next_id(ts: &mut ThreadState) -> u64 {
    if ts.next_id >= ts.id_end {
        ts.next_id = NEXT_CALL.fetch_add(ID_BLOCK, Ordering::Relaxed);
        ts.id_end = ts.next_id + ID_BLOCK;
    }
    let id = ts.next_id;
    ts.next_id += 1;
    id
}

/// What the fast path of a start event decided.
enum StartFast {
    Done(Verdict),
    /// First sight of the code object: classify it (calls Python).
    Miss,
    /// A generator/coroutine, or a call whose arguments may be wanted: needs the frame.
    Slow(u32, Kind, u64),
}

/// A Python function starts (`resume` false) or a generator/coroutine resumes (`resume` true).
/// `frame` may be null on 3.12+ (fetched lazily only when needed).
#[inline]
pub fn on_start(
    py: Python<'_>,
    code: *mut ffi::PyObject,
    frame: *mut ffi::PyFrameObject,
    resume: bool,
) -> Verdict {
    if !ACTIVE.load(Ordering::Relaxed) {
        return Verdict::Continue;
    }
    let key = code as usize;
    // The common case in one visit to the thread state: a known, traced, plain function.
    let fast = with_ts(|ts| match lookup(ts, key) {
        None => StartFast::Miss,
        Some((_, false, _)) => StartFast::Done(Verdict::Disable),
        Some((idx, true, kind)) => {
            let now = clock::mono_ns();
            if kind.suspends() || (CAPTURE_ARGS.load(Ordering::Relaxed) && detail_available(now)) {
                StartFast::Slow(idx, kind, now)
            } else {
                push_new(ts, key, idx, kind, now, 0, None);
                StartFast::Done(Verdict::Continue)
            }
        }
    });
    match fast {
        None => Verdict::Continue, // busy: the tracer's own Python code
        Some(StartFast::Done(v)) => v,
        Some(StartFast::Slow(idx, kind, now)) => start_slow(py, key, frame, resume, idx, kind, now),
        Some(StartFast::Miss) => {
            let frame = if frame.is_null() {
                current_frame()
            } else {
                frame
            };
            let globals = if frame.is_null() {
                std::ptr::null_mut()
            } else {
                // SAFETY: frame is live; PyFrame_GetGlobals returns a new reference, and the
                // frame keeps the dict alive after we drop ours.
                unsafe {
                    let g = PyFrame_GetGlobals(frame);
                    ffi::Py_XDECREF(g);
                    g
                }
            };
            let c = classify_slow(py, code, globals);
            with_ts(|ts| {
                ts.cache.insert(key, c);
            });
            let (idx, traced, kind) = c;
            if !traced || idx == UNKNOWN {
                return Verdict::Disable;
            }
            start_slow(py, key, frame, resume, idx, kind, clock::mono_ns())
        }
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "the fast path's locals, passed on as they are: a struct built per call on the hot path would only rename them"
)]
fn start_slow(
    py: Python<'_>,
    key: usize,
    mut frame: *mut ffi::PyFrameObject,
    resume: bool,
    idx: u32,
    kind: Kind,
    now: u64,
) -> Verdict {
    if kind.suspends() {
        if frame.is_null() {
            frame = current_frame();
        }
        let gen_key = frame as usize;
        if resume {
            let taken = registry()
                .as_mut()
                .and_then(|r| r.suspended.remove(&gen_key));
            with_ts(|ts| {
                let f = match taken {
                    Some(mut f) => {
                        f.seg_start_ns = now;
                        f.resumes += 1;
                        f
                    }
                    // A generator that started before tracing did.
                    None => Frame {
                        code: key,
                        idx,
                        kind,
                        call_id: next_id(ts),
                        parent_id: ts.stack.last().map(|p| p.call_id).unwrap_or(0),
                        depth: ts.stack.len() as u32,
                        start_ns: now,
                        seg_start_ns: now,
                        active_ns: 0,
                        resumes: 1,
                        gen_key,
                        partial: true,
                        args: None,
                    },
                };
                ts.stack.push(f);
            });
            return Verdict::Continue;
        }
        let args = if CAPTURE_ARGS.load(Ordering::Relaxed) && detail_available(now) {
            capture_args(py, frame, idx)
        } else {
            None
        };
        let creator = take_adoption(gen_key, key);
        with_ts(|ts| {
            let len = ts.stack.len();
            push_new(ts, key, idx, kind, now, gen_key, args);
            if let Some(a) = creator.filter(|a| a.tid == ts.tid) {
                let f = &mut ts.stack[len];
                f.parent_id = a.parent_id;
                f.depth = a.depth;
            }
        });
        return Verdict::Continue;
    }
    if frame.is_null() {
        frame = current_frame();
    }
    let args = capture_args(py, frame, idx);
    with_ts(|ts| push_new(ts, key, idx, kind, now, 0, args));
    Verdict::Continue
}

#[inline]
fn push_new(
    ts: &mut ThreadState,
    code: usize,
    idx: u32,
    kind: Kind,
    now: u64,
    gen_key: usize,
    args: Option<String>,
) {
    let (parent_id, depth) = match ts.stack.last() {
        Some(p) => (p.call_id, ts.stack.len() as u32),
        None => (0, 0),
    };
    let call_id = next_id(ts);
    ts.stack.push(Frame {
        code,
        idx,
        kind,
        call_id,
        parent_id,
        depth,
        start_ns: now,
        seg_start_ns: now,
        active_ns: 0,
        resumes: 0,
        gen_key,
        partial: false,
        args,
    });
}

/// Records that the coroutine whose (not yet started) frame is `frame` was created by the
/// innermost traced call of this thread. Called by the agent's `loop.create_task` wrapper.
pub fn adopt(frame: *mut ffi::PyFrameObject) {
    if frame.is_null() || !ACTIVE.load(Ordering::Relaxed) {
        return;
    }
    // SAFETY: the caller holds the GIL and a reference to the frame; PyFrame_GetCode returns a
    // new reference, released at once (the frame keeps the code alive).
    let code = unsafe {
        let c = ffi::PyFrame_GetCode(frame);
        ffi::Py_DECREF(c.cast());
        c as usize
    };
    let Some(Some((tid, parent_id, depth))) = with_ts(|ts| {
        ts.stack
            .last()
            .map(|p| (ts.tid, p.call_id, ts.stack.len() as u32))
    }) else {
        return;
    };
    let mut g = registry();
    let Some(r) = g.as_mut() else { return };
    if r.adopted.len() >= MAX_ADOPTED {
        r.adopted.clear();
    }
    r.adopted.insert(
        frame as usize,
        Adoption {
            code,
            tid,
            parent_id,
            depth,
        },
    );
    ADOPTED.store(r.adopted.len(), Ordering::Relaxed);
}

/// The creator recorded for a coroutine that is starting now, if any.
fn take_adoption(gen_key: usize, code: usize) -> Option<Adoption> {
    if ADOPTED.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let mut g = registry();
    let r = g.as_mut()?;
    let a = r.adopted.remove(&gen_key);
    ADOPTED.store(r.adopted.len(), Ordering::Relaxed);
    a.filter(|a| a.code == code)
}

/// How a frame left.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Return,
    Yield,
    Unwind,
}

/// What the fast path of an exit event decided.
enum ExitFast {
    Done(Verdict),
    /// A yield, a failure or a detailed call: finish outside the thread state.
    Slow(Frame, u64, u64, u64),
}

/// A Python function returns, yields or unwinds. `value` is the return/yield value or the
/// exception (3.12+), or null. Returns whether the event should be disabled for this code.
#[inline]
pub fn on_exit(
    py: Python<'_>,
    code: *mut ffi::PyObject,
    exit: Exit,
    value: *mut ffi::PyObject,
) -> Verdict {
    if !ACTIVE.load(Ordering::Relaxed) {
        return Verdict::Continue;
    }
    let key = code as usize;
    let fast = with_ts(|ts| {
        // The frame is almost always on top; search a little deeper after a filter change or
        // a missed event. A return we never saw start (tracing began inside it) is ignored.
        let top = ts.stack.len();
        let pos = match ts.stack.last() {
            Some(f) if f.code == key => Some(top - 1),
            _ => ts
                .stack
                .iter()
                .rev()
                .take(8)
                .position(|f| f.code == key)
                .map(|p| top - 1 - p),
        };
        let Some(at) = pos else {
            return match lookup(ts, key) {
                Some((_, false, _)) => ExitFast::Done(Verdict::Disable),
                _ => ExitFast::Done(Verdict::Continue),
            };
        };
        ts.stack.truncate(at + 1);
        let mut f = ts.stack.pop().expect("index found above");
        let now = clock::mono_ns();
        if exit == Exit::Yield && f.kind.suspends() {
            f.active_ns += now.saturating_sub(f.seg_start_ns);
            return ExitFast::Slow(f, now, 0, ts.tid);
        }
        let duration = now.saturating_sub(f.start_ns);
        let failed = exit == Exit::Unwind;
        {
            let s = &mut ts.local;
            let i = f.idx as usize;
            if s.fns.len() <= i {
                s.fns.resize(i + 1, FnStats::default());
            }
            if s.fns[i].count == 0 {
                s.touched.push(f.idx);
            }
            s.fns[i].record(duration, failed);
            s.calls += 1;
        }
        if ts.flush_epoch != FLUSH_EPOCH.load(Ordering::Relaxed) {
            publish(ts);
        }
        let wanted = duration >= MIN_DURATION_NS.load(Ordering::Relaxed)
            && (f.args.is_some() || detail_available(now));
        if !wanted && !failed && !f.kind.suspends() {
            ts.local.skipped += 1;
            return ExitFast::Done(Verdict::Continue);
        }
        f.active_ns += now.saturating_sub(f.seg_start_ns);
        ExitFast::Slow(f, now, duration, ts.tid)
    });
    let (f, now, duration, tid) = match fast {
        None | Some(ExitFast::Done(Verdict::Continue)) => return Verdict::Continue,
        Some(ExitFast::Done(v)) => return v,
        Some(ExitFast::Slow(f, now, duration, tid)) => (f, now, duration, tid),
    };
    if exit == Exit::Yield && f.kind.suspends() {
        if let Some(r) = registry().as_mut() {
            if r.suspended.len() < 100_000 {
                r.suspended.insert(f.gen_key, f);
            }
        }
        return Verdict::Continue;
    }
    let failed = exit == Exit::Unwind;
    let exc_name = if failed {
        type_name_of(value)
    } else {
        String::new()
    };
    // GeneratorExit from close() is a cancellation, not a failure worth an exception event.
    let cancelled = failed && exc_name == "GeneratorExit";
    // An exception in hand is reported now; without one (3.11), the call waits for its type.
    let armed = if !failed || cancelled {
        false
    } else if !value.is_null() {
        report_exception(py, value, std::ptr::null_mut());
        false
    } else {
        arm_exception_catch(py)
    };
    if duration >= MIN_DURATION_NS.load(Ordering::Relaxed) && detail_take(now) {
        if armed {
            // 3.11: the exception's type is known at the next exception event; the call event
            // waits for it (see `profile311::catch_exception`).
            with_ts(|ts| {
                if ts.pending_failed.len() < 64 {
                    ts.pending_failed.push((f, tid, duration, now));
                }
            });
            return Verdict::Continue;
        }
        let ret = if f.args.is_some() && exit == Exit::Return {
            Some(summarize_value(py, value))
        } else {
            None
        };
        emit_call(&f, tid, duration, now, exit, &exc_name, cancelled, ret);
    } else {
        with_ts(|ts| ts.local.skipped += 1);
    }
    Verdict::Continue
}

impl Registry {
    pub fn thread_stats(&self) -> &[Arc<Mutex<ThreadStats>>] {
        &self.threads
    }
}

/// In a forked child: only the forking thread exists. Forget the other threads, the suspended
/// generators and all statistics (the child is a new run), and take the new thread id.
pub fn after_fork_child() {
    let mine = with_ts(|ts| {
        ts.tid = gettid();
        *ts.stats.lock().unwrap_or_else(|e| e.into_inner()) = ThreadStats::default();
        ts.local = ThreadStats::default();
        Arc::clone(&ts.stats)
    });
    if let Some(r) = registry().as_mut() {
        r.threads.clear();
        r.threads.extend(mine);
        r.suspended.clear();
        r.adopted.clear();
        ADOPTED.store(0, Ordering::Relaxed);
        for t in r.totals.iter_mut() {
            *t = FnStats::default();
        }
        r.detail_sent = 0;
    }
}

/// Moves a thread's local statistics to its shared slot.
fn publish(ts: &mut ThreadState) {
    ts.flush_epoch = FLUSH_EPOCH.load(Ordering::Relaxed);
    if ts.local.calls == 0 && ts.local.skipped == 0 {
        return;
    }
    let mut shared = ts.stats.lock().unwrap_or_else(|e| e.into_inner());
    let local = &mut ts.local;
    for i in local.touched.drain(..) {
        let d = std::mem::take(&mut local.fns[i as usize]);
        let iu = i as usize;
        if shared.fns.len() <= iu {
            shared.fns.resize(iu + 1, FnStats::default());
        }
        if shared.fns[iu].count == 0 {
            shared.touched.push(i);
        }
        shared.fns[iu].merge(&d);
    }
    shared.calls += std::mem::take(&mut local.calls);
    shared.skipped += std::mem::take(&mut local.skipped);
}

impl Drop for ThreadState {
    fn drop(&mut self) {
        // A finished thread leaves its last statistics behind.
        publish(self);
    }
}

/// Asks every thread to publish its statistics (at its next call), and publishes the calling
/// thread's now.
pub fn request_publish() {
    FLUSH_EPOCH.fetch_add(1, Ordering::Relaxed);
    let _ = TS.try_with(|cell| {
        if let Ok(mut b) = cell.try_borrow_mut() {
            if let Some(ts) = b.as_mut() {
                publish(ts);
            }
        }
    });
}

/// (calls completed, calls aggregated but not sent as detailed events), over all threads.
pub fn counters() -> (u64, u64) {
    let g = registry();
    let Some(r) = g.as_ref() else { return (0, 0) };
    r.threads.iter().fold((0, 0), |(c, k), t| {
        let s = t.lock().unwrap_or_else(|e| e.into_inner());
        (c + s.calls, k + s.skipped)
    })
}

/// Reports an exception leaving a traced frame, once per exception object (see
/// `first_sight`). `tb` is the traceback passed with a 3.11 exception event, whose head is the
/// frame the exception reached after the traced frame it left; null on 3.12+, where the
/// exception comes with the unwind of the frame it leaves.
fn report_exception(py: Python<'_>, exc: *mut ffi::PyObject, tb: *mut ffi::PyObject) {
    // SAFETY: exc is a live object passed by the interpreter (an exception instance: the
    // unwinding exception on 3.12+, an exception event's value on 3.11).
    if !unsafe { exc_identity::first_sight(exc, tb) } {
        return;
    }
    let cb = registry()
        .as_ref()
        .and_then(|r| r.on_exception.as_ref().map(|c| c.clone_ref(py)));
    if let Some(cb) = cb {
        let _busy = BusyGuard::new();
        // SAFETY: exc is a live exception object passed by the interpreter.
        let e = unsafe { Bound::from_borrowed_ptr(py, exc) };
        let tb = if tb.is_null() {
            py.None().into_bound(py)
        } else {
            // SAFETY: tb is a live traceback (or None) passed by the interpreter.
            unsafe { Bound::from_borrowed_ptr(py, tb) }
        };
        if let Err(err) = cb.call1(py, (e, tb)) {
            err.print(py);
        }
    }
}

/// Which exceptions the tracer has reported already.
///
/// An exception unwinding through several traced frames is reported once, at the first. The
/// tracer may not keep a reference to it (that would keep its traceback's frames and their
/// locals alive, delaying finalisers of the traced program), and its address is no identity:
/// CPython frees a caught exception at once and the next one is often allocated at the same
/// address, so an address remembered from the last report takes a new exception for the old one
/// (a raise-and-catch loop lost most of its exceptions that way).
///
/// So the tracer marks the exception object itself, in a byte no one else uses: the padding after
/// `suppress_context`, the last field of every exception's C header (`PyException_HEAD`). Every
/// exception is allocated zeroed (`tp_alloc`), so an unmarked one is new to the tracer whatever
/// its address; the mark is invisible to Python (not an attribute, not in `__dict__`, not
/// pickled). It is written only where the layout is known: the interpreter's `BaseException`
/// has exactly the header size this module assumes (3.11 to 3.14), and the exception's type is
/// a built-in exception type or a subclass of one made without a C layout of its own (a class
/// statement, `PyErr_NewException`, pyo3), since a C extension's own exception struct could put
/// a field in that padding. Other exceptions fall back to the address of the last one reported on
/// the thread (the old rule, with its blind spot).
///
/// An exception whose traceback begins at the frame it is leaving has just been raised (or
/// raised anew with its traceback cleared) and is reported even when marked: MemoryError
/// instances come from a free list that does not clear the mark.
///
/// Rules: it never calls Python, never takes a reference, and writes nothing but the mark byte.
mod exc_identity {
    use super::*;
    use std::os::raw::c_char;

    /// CPython's `PyException_HEAD` (3.11 to 3.14): the fields every exception object starts with.
    #[repr(C)]
    struct ExcHead {
        ob_base: ffi::PyObject,
        dict: *mut ffi::PyObject,
        args: *mut ffi::PyObject,
        notes: *mut ffi::PyObject,
        traceback: *mut ffi::PyObject,
        context: *mut ffi::PyObject,
        cause: *mut ffi::PyObject,
        suppress_context: c_char,
    }

    /// The mark's offset: the header's last byte, padding after `suppress_context` (the byte
    /// farthest from it, should a later CPython add a small field right after it).
    const MARK_AT: usize = std::mem::size_of::<ExcHead>() - 1;
    const _: () = assert!(MARK_AT > std::mem::offset_of!(ExcHead, suppress_context));
    const MARK: u8 = 0xA5;

    /// 0 not yet checked, 1 the interpreter has the layout above, 2 it does not.
    static LAYOUT: AtomicU8 = AtomicU8::new(0);

    fn layout_known() -> bool {
        match LAYOUT.load(Ordering::Relaxed) {
            1 => true,
            2 => false,
            _ => {
                // SAFETY: reads the size of the static BaseException type and the version
                // constant; both are set before any extension module is imported.
                let ok = unsafe {
                    let base = ffi::PyExc_BaseException as *mut ffi::PyTypeObject;
                    ffi::Py_Version >= 0x030B_0000
                        && ffi::Py_Version < 0x030F_0000
                        && (*base).tp_basicsize == std::mem::size_of::<ExcHead>() as ffi::Py_ssize_t
                };
                LAYOUT.store(if ok { 1 } else { 2 }, Ordering::Relaxed);
                ok
            }
        }
    }

    /// Whether `exc`'s C layout is a built-in exception's: its type, or the first static type
    /// among its bases, is a built-in one (its name has no module part).
    ///
    /// # Safety
    /// `exc` is a live object; the GIL is held.
    unsafe fn markable(exc: *mut ffi::PyObject) -> bool {
        if !layout_known() || ffi::PyExceptionInstance_Check(exc) == 0 {
            return false;
        }
        let mut t = ffi::Py_TYPE(exc);
        // Bounded: type hierarchies are shallow; a deeper one is simply not marked.
        for _ in 0..64 {
            if t.is_null() {
                return false;
            }
            if (*t).tp_flags & ffi::Py_TPFLAGS_HEAPTYPE == 0 {
                return !std::ffi::CStr::from_ptr((*t).tp_name)
                    .to_bytes()
                    .contains(&b'.');
            }
            t = (*t).tp_base;
        }
        false
    }

    /// Whether the traceback `tb` has at most `n` entries.
    ///
    /// # Safety
    /// `tb` is null or a live traceback; the GIL is held.
    unsafe fn tb_at_most(tb: *mut ffi::PyObject, n: usize) -> bool {
        let mut t = tb as *mut ffi::PyTracebackObject;
        for _ in 0..n {
            if t.is_null() {
                return true;
            }
            t = (*t).tb_next;
        }
        t.is_null()
    }

    /// Whether `exc` is seen for the first time (and is to be reported); marks it seen.
    /// `event_tb` is null on 3.12+ (the exception's own traceback is then up to date, its head
    /// the frame being left); on 3.11 it is the traceback of the exception event, whose head is
    /// the frame the exception reached after the one it left: the exception's `__traceback__`
    /// field lags behind there (CPython 3.11 sets it only when a handler catches the exception).
    ///
    /// # Safety
    /// `exc` is null or a live object; `event_tb` is null, None or a live traceback; the GIL is
    /// held.
    pub unsafe fn first_sight(exc: *mut ffi::PyObject, event_tb: *mut ffi::PyObject) -> bool {
        if exc.is_null() {
            return false;
        }
        if !markable(exc) {
            return by_address(exc as usize);
        }
        let (tb, entries) = if event_tb.is_null() {
            ((*(exc as *mut ExcHead)).traceback, 1)
        } else if event_tb == ffi::Py_None() {
            (std::ptr::null_mut(), 2)
        } else {
            (event_tb, 2)
        };
        // Just raised: the traceback holds the frame it leaves (and, on 3.11, the one it
        // reached) and nothing before.
        let fresh = !tb.is_null() && tb_at_most(tb, entries);
        let mark = (exc as *mut u8).add(MARK_AT);
        if !fresh && *mark == MARK {
            return false;
        }
        *mark = MARK;
        true
    }

    /// The fallback for exceptions that cannot be marked: new unless it has the address of the
    /// last one reported on this thread.
    fn by_address(addr: usize) -> bool {
        with_ts(|ts| {
            if ts.last_exc == addr {
                false
            } else {
                ts.last_exc = addr;
                true
            }
        })
        .unwrap_or(false)
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "one call event's parts, each from a different place of the exit path; called from two sites only"
)]
fn emit_call(
    f: &Frame,
    tid: u64,
    duration: u64,
    now: u64,
    exit: Exit,
    exc_name: &str,
    cancelled: bool,
    ret: Option<String>,
) {
    let (meta, ident) = {
        let mut g = registry();
        let Some(r) = g.as_mut() else { return };
        r.detail_sent += 1;
        let Some(m) = r.metas.get(f.idx as usize) else {
            return;
        };
        (Arc::clone(m), Arc::clone(&r.ident))
    };
    let failed = exit == Exit::Unwind && !cancelled;
    let qual = meta.qualified();
    let mut o = String::with_capacity(512);
    let mut first = true;
    let ts = clock::rfc3339_ms(clock::wall_ns_at(f.start_ns));
    ident.write_head(&mut o, &mut first, &ts, "call", tid, "call", &qual, &qual);
    let call_ref = format!("{}.c{}", ident.run_id, f.call_id);
    json::key(&mut o, &mut first, "event_id");
    json::push_str(&mut o, &call_ref);
    json::key(&mut o, &mut first, "correlation_id");
    json::push_str(&mut o, &call_ref);
    json::key(&mut o, &mut first, "status");
    o.push_str(if cancelled {
        "\"cancelled\""
    } else if failed {
        "\"failed\""
    } else {
        "\"success\""
    });
    json::key(&mut o, &mut first, "severity");
    o.push_str(if failed { "\"warn\"" } else { "\"info\"" });
    if failed {
        json::key(&mut o, &mut first, "summary");
        json::push_str(&mut o, &format!("raised {exc_name}"));
    }
    json::key(&mut o, &mut first, "duration_ms");
    json::push_f64(&mut o, duration as f64 / 1e6);
    json::key(&mut o, &mut first, "thread_id");
    let _ = write!(o, "{}", tid);
    json::key(&mut o, &mut first, "metrics");
    let _ = write!(
        o,
        "{{\"active_ms\":{},\"depth\":{}}}",
        f.active_ns as f64 / 1e6,
        f.depth
    );
    json::key(&mut o, &mut first, "payload");
    o.push('{');
    let mut pf = true;
    json::key(&mut o, &mut pf, "call_id");
    let _ = write!(o, "{}", f.call_id);
    json::key(&mut o, &mut pf, "parent_call_id");
    if f.parent_id == 0 {
        o.push_str("null");
    } else {
        let _ = write!(o, "{}", f.parent_id);
    }
    json::key(&mut o, &mut pf, "depth");
    let _ = write!(o, "{}", f.depth);
    json::key(&mut o, &mut pf, "module");
    json::push_str(&mut o, &meta.module);
    json::key(&mut o, &mut pf, "qualname");
    json::push_str(&mut o, &meta.qualname);
    json::key(&mut o, &mut pf, "file");
    json::push_str(&mut o, &meta.file);
    json::key(&mut o, &mut pf, "line");
    let _ = write!(o, "{}", meta.line);
    json::key(&mut o, &mut pf, "kind");
    json::push_str(&mut o, f.kind.name());
    json::key(&mut o, &mut pf, "start_ns");
    let _ = write!(o, "{}", f.start_ns);
    json::key(&mut o, &mut pf, "end_ns");
    let _ = write!(o, "{}", now);
    if f.kind.suspends() {
        json::key(&mut o, &mut pf, "resumes");
        let _ = write!(o, "{}", f.resumes);
    }
    if f.partial {
        json::key(&mut o, &mut pf, "partial");
        o.push_str("true");
    }
    if let Some(a) = &f.args {
        json::key(&mut o, &mut pf, "args");
        o.push_str(a);
    }
    if let Some(r) = &ret {
        json::key(&mut o, &mut pf, "return");
        o.push_str(r);
    }
    if exit == Exit::Unwind {
        json::key(&mut o, &mut pf, "exception");
        if exc_name.is_empty() {
            o.push_str("null");
        } else {
            json::push_str(&mut o, exc_name);
        }
    }
    o.push_str("}}");
    transport::global().push(o, true);
}

// ---------------------------------------------------------------------------------------------
// Aggregates.

/// One function's statistics: its code, the delta since the last flush, the totals.
pub type StatsRow = (Arc<CodeMeta>, FnStats, FnStats);

/// Moves every thread's deltas into the totals; returns (index, delta, total) for each function
/// called since the last flush.
pub fn take_stats() -> (Vec<StatsRow>, Arc<Ident>) {
    let mut g = registry();
    let Some(r) = g.as_mut() else {
        return (Vec::new(), Arc::new(Ident::default()));
    };
    let mut delta: PtrMap<FnStats> = PtrMap::default();
    for t in &r.threads {
        let mut s = t.lock().unwrap_or_else(|e| e.into_inner());
        let touched = std::mem::take(&mut s.touched);
        for i in touched {
            let d = std::mem::take(&mut s.fns[i as usize]);
            delta.entry(i as usize).or_default().merge(&d);
        }
    }
    let mut out = Vec::with_capacity(delta.len());
    let mut keys: Vec<usize> = delta.keys().copied().collect();
    keys.sort_unstable();
    for i in keys {
        let d = &delta[&i];
        if i >= r.totals.len() {
            continue;
        }
        r.totals[i].merge(d);
        out.push((Arc::clone(&r.metas[i]), d.clone(), r.totals[i].clone()));
    }
    (out, Arc::clone(&r.ident))
}

/// Drops shadow-stack state (used when tracing is switched off: frames that are live now will
/// return while tracing is off, so their entries would go stale).
pub fn reset_thread_stacks() {
    STACK_EPOCH.fetch_add(1, Ordering::AcqRel);
    if let Some(r) = registry().as_mut() {
        r.suspended.clear();
        r.adopted.clear();
        ADOPTED.store(0, Ordering::Relaxed);
    }
}

/// `sys.monitoring.DISABLE` (borrowed), or None before `install`.
pub fn disable_ptr() -> *mut ffi::PyObject {
    let p = DISABLE.load(Ordering::Acquire);
    if p.is_null() {
        // SAFETY: None is a static object.
        unsafe { ffi::Py_None() }
    } else {
        p
    }
}

/// A call unwound without its exception in hand (3.11 only): arms the one-shot trace hook that
/// catches the exception's type, and says whether it did (the call event then waits for it).
#[cfg(not(Py_3_12))]
fn arm_exception_catch(py: Python<'_>) -> bool {
    profile311::note_unwind(py)
}

/// 3.12+: no profile hook to arm; `sys.monitoring` passes the exception with the unwind.
#[cfg(Py_3_12)]
fn arm_exception_catch(_py: Python<'_>) -> bool {
    false
}

// ---------------------------------------------------------------------------------------------
// Python 3.11: the C-level profile function.

#[cfg(not(Py_3_12))]
pub mod profile311 {
    use super::*;
    use std::os::raw::c_int;

    const PYTRACE_CALL: c_int = 0;
    const PYTRACE_RETURN: c_int = 3;

    extern "C" {
        fn _PyEval_SetProfile(
            tstate: *mut ffi::PyThreadState,
            func: Option<ffi::Py_tracefunc>,
            arg: *mut ffi::PyObject,
        ) -> c_int;
    }

    /// The profile function. Exceptions inside the tracer are never propagated (returns 0).
    pub unsafe extern "C" fn profile(
        _obj: *mut ffi::PyObject,
        frame: *mut ffi::PyFrameObject,
        what: c_int,
        arg: *mut ffi::PyObject,
    ) -> c_int {
        if what != PYTRACE_CALL && what != PYTRACE_RETURN {
            return 0;
        }
        let py = Python::assume_attached();
        let code = ffi::PyFrame_GetCode(frame) as *mut ffi::PyObject;
        // The frame holds the code alive; our registry holds it too once classified.
        ffi::Py_DECREF(code);
        if what == PYTRACE_CALL {
            let resume = is_resume(code, frame);
            on_start(py, code, frame, resume);
        } else if arg.is_null() {
            on_exit(py, code, Exit::Unwind, std::ptr::null_mut());
        } else {
            let exit = if is_yield(code, frame) {
                Exit::Yield
            } else {
                Exit::Return
            };
            on_exit(py, code, exit, arg);
        }
        0
    }

    /// The cached (index, kind) of a code object seen before on this thread.
    fn kind_of(code: *mut ffi::PyObject) -> Option<(u32, Kind)> {
        let (idx, _, kind) = with_ts(|ts| lookup(ts, code as usize)).flatten()?;
        Some((idx, kind))
    }

    /// A CALL event for a generator frame we saw suspend is a resumption.
    fn is_resume(code: *mut ffi::PyObject, frame: *mut ffi::PyFrameObject) -> bool {
        match kind_of(code) {
            Some((_, k)) if k.suspends() => registry()
                .as_ref()
                .map(|r| r.suspended.contains_key(&(frame as usize)))
                .unwrap_or(false),
            _ => false,
        }
    }

    /// A RETURN event at a YIELD_VALUE instruction is a yield.
    fn is_yield(code: *mut ffi::PyObject, frame: *mut ffi::PyFrameObject) -> bool {
        match kind_of(code) {
            Some((idx, k)) if k.suspends() => {
                // SAFETY: frame is the live frame being profiled.
                let lasti = unsafe { PyFrame_GetLasti(frame) };
                registry()
                    .as_ref()
                    .and_then(|r| {
                        r.metas
                            .get(idx as usize)
                            .map(|m| m.yield_offsets.contains(&lasti))
                    })
                    .unwrap_or(false)
            }
            _ => false,
        }
    }

    /// On 3.11 the exception is not visible to a profile function while a frame unwinds (the
    /// interpreter has fetched it away). A C trace function set for just this moment receives
    /// it: PyTrace_EXCEPTION fires in the frame the exception reaches next, with
    /// (type, value, traceback). It is set only when no other trace function (debugger,
    /// coverage) is installed, and removes itself at its first exception event.
    /// Returns whether the trace function was armed.
    pub fn note_unwind(py: Python<'_>) -> bool {
        let free = py
            .import("sys")
            .and_then(|s| s.getattr("gettrace"))
            .and_then(|g| g.call0())
            .map(|t| t.is_none())
            .unwrap_or(false);
        if free {
            // SAFETY: GIL held; sets the trace function of the calling thread.
            unsafe { ffi::PyEval_SetTrace(Some(catch_exception), std::ptr::null_mut()) };
        }
        free
    }

    /// Sends the failed calls that waited for their exception's type.
    fn emit_pending(exc_name: &str) {
        let pending = with_ts(|ts| std::mem::take(&mut ts.pending_failed)).unwrap_or_default();
        for (f, tid, duration, now) in pending {
            emit_call(&f, tid, duration, now, Exit::Unwind, exc_name, false, None);
        }
    }

    const PYTRACE_EXCEPTION: c_int = 1;

    unsafe extern "C" fn catch_exception(
        _obj: *mut ffi::PyObject,
        _frame: *mut ffi::PyFrameObject,
        what: c_int,
        arg: *mut ffi::PyObject,
    ) -> c_int {
        if what != PYTRACE_EXCEPTION && what != PYTRACE_RETURN {
            return 0;
        }
        ffi::PyEval_SetTrace(None, std::ptr::null_mut());
        let mut name = String::new();
        if what == PYTRACE_EXCEPTION
            && !arg.is_null()
            && ffi::PyTuple_Check(arg) != 0
            && ffi::PyTuple_GET_SIZE(arg) >= 3
        {
            let py = Python::assume_attached();
            let value = ffi::PyTuple_GET_ITEM(arg, 1);
            let tb = ffi::PyTuple_GET_ITEM(arg, 2);
            if !value.is_null() && value != ffi::Py_None() {
                name = type_name_of(value);
                report_exception(py, value, tb);
            }
        }
        // A RETURN first means the exception ended in C code that swallowed it: type unknown.
        emit_pending(&name);
        0
    }

    /// Sets the profile function on every thread of the interpreter (3.12 has
    /// PyEval_SetProfileAllThreads; 3.11 needs the loop).
    pub fn set_all_threads(on: bool) {
        // SAFETY: called with the GIL held; the thread list is stable while we hold it.
        unsafe {
            let func: Option<ffi::Py_tracefunc> = if on { Some(profile) } else { None };
            let me = ffi::PyThreadState_Get();
            let interp = ffi::PyThreadState_GetInterpreter(me);
            let mut t = ffi::PyInterpreterState_ThreadHead(interp);
            while !t.is_null() {
                if _PyEval_SetProfile(t, func, std::ptr::null_mut()) < 0 {
                    ffi::PyErr_Clear();
                }
                t = ffi::PyThreadState_Next(t);
            }
        }
    }

    /// Sets the profile function on the calling thread only.
    pub fn set_this_thread() {
        // SAFETY: called with the GIL held.
        unsafe { ffi::PyEval_SetProfile(Some(profile), std::ptr::null_mut()) }
    }
}
