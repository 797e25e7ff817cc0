//! Where the meta-training engine is linked into the command-line tool.
//!
//! `train`, `demo`, `reproduce` and `bench` drive an [`crate::train::Engine`]; this
//! function says which. Until the engine (the `meta` module) is linked here, those
//! commands stop with a clear error while `eval`, `export` and `plot`, which need only
//! the core, work fully.

use crate::train::EngineFactory;

/// The engine factory the CLI uses, or `None` when no engine is linked into this build.
pub fn engine_factory() -> Option<EngineFactory> {
    None
}
