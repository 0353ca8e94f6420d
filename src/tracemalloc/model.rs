//! The trace table's start/stop protocol for the loom models in `loom-tests/`
//! (`tracemalloc_start_stop.rs`). Only built under `--cfg loom`: a [`ModelTraces`] is one
//! trace table (the shipping `table.rs` code) per loom execution; a model records and forgets
//! blocks (addresses it makes up, with made-up frames) on some threads while another starts
//! or stops tracing.

use super::table::TraceTable;
use std::sync::Arc;

/// One trace table. Cloning gives another handle to the same table.
#[derive(Clone)]
pub struct ModelTraces {
    table: Arc<TraceTable>,
}

impl Default for ModelTraces {
    fn default() -> Self {
        Self::new()
    }
}

impl ModelTraces {
    /// A table, not tracing.
    pub fn new() -> Self {
        ModelTraces {
            table: Arc::new(TraceTable::new()),
        }
    }

    /// `tracemalloc::start`'s part on the table.
    pub fn start(&self) {
        self.table.start();
    }

    /// `tracemalloc::stop`'s part on the table.
    pub fn stop(&self) {
        self.table.stop();
    }

    /// `tracemalloc::clear_traces`'s part on the table.
    pub fn clear(&self) {
        self.table.clear();
    }

    /// Whether the table is tracing (the test the allocator's hooks make before recording or
    /// forgetting: in the shipping code the hooks' mode, set and cleared in the same order).
    pub fn is_tracing(&self) -> bool {
        self.table.is_tracing()
    }

    /// An allocation of `size` bytes at `addr` with one frame `frame`: recorded if tracing.
    pub fn record(&self, addr: usize, size: usize, frame: usize) -> bool {
        self.table.record(addr, size, 0, 1, &[frame])
    }

    /// A free of `addr`: its trace forgotten.
    pub fn forget(&self, addr: usize) -> bool {
        self.table.forget(addr).is_some()
    }

    /// Traces held.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no trace is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `(current, peak)` traced bytes.
    pub fn traced_memory(&self) -> (usize, usize) {
        self.table.traced_memory()
    }
}

impl Drop for ModelTraces {
    fn drop(&mut self) {
        if Arc::strong_count(&self.table) == 1 {
            // Give the mappings back (the shipping table is a static and never does).
            self.table.clear();
        }
    }
}
