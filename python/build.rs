//! Build script: exposes the target interpreter's version as `Py_3_x` cfgs so the tracer can
//! pick `sys.monitoring` (3.12+) or the C profile hook (3.11). It must never probe anything else.
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
