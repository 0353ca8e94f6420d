//! `Frame` and `Traceback`: where a block was allocated, resolved.

use std::sync::Arc;

/// One frame of a traceback: a file, a line and a function (Python's `tracemalloc.Frame`,
/// plus the function's name).
///
/// The file is shown relative to the working directory of the snapshot when it is inside it
/// (`src/main.rs`, as `file!()` gives it for a package's own files), else as the debug info
/// has it. Without debug info the file is `<unknown>` and the line 0 (see the module doc).
///
/// ```
/// #[global_allocator]
/// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
/// use pyheap::tracemalloc;
/// fn main() {
///     tracemalloc::start(1);
///     let b = Box::new([0u8; 64]);
///     let tb = tracemalloc::get_object_traceback(&b).unwrap();
///     let frame = tb.line().unwrap(); // the allocation's own frame
///     println!("{}:{} in {}", frame.filename(), frame.lineno(), frame.name());
///     tracemalloc::stop();
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Frame {
    filename: Arc<str>,
    lineno: u32,
    name: Arc<str>,
}

impl Frame {
    pub(crate) fn new(filename: Arc<str>, lineno: u32, name: Arc<str>) -> Frame {
        Frame {
            filename,
            lineno,
            name,
        }
    }

    /// The source file.
    ///
    /// ```
    /// #[global_allocator]
    /// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
    /// use pyheap::tracemalloc;
    /// fn main() {
    ///     tracemalloc::start(1);
    ///     let b = Box::new([0u8; 64]);
    ///     let tb = tracemalloc::get_object_traceback(&b).unwrap();
    ///     assert!(!tb.line().unwrap().filename().is_empty());
    ///     tracemalloc::stop();
    /// }
    /// ```
    pub fn filename(&self) -> &str {
        &self.filename
    }

    /// The line in the file (1-based; 0 when unknown).
    ///
    /// ```
    /// #[global_allocator]
    /// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
    /// use pyheap::tracemalloc;
    /// fn main() {
    ///     tracemalloc::start(1);
    ///     let b = Box::new([0u8; 64]);
    ///     let tb = tracemalloc::get_object_traceback(&b).unwrap();
    ///     let line = tb.line().unwrap();
    ///     // 0 only without debug info, whose file is then `<unknown>`.
    ///     assert!(line.lineno() > 0 || line.filename() == "<unknown>");
    ///     tracemalloc::stop();
    /// }
    /// ```
    pub fn lineno(&self) -> u32 {
        self.lineno
    }

    /// The function, demangled, without the hash (`myapp::cache::Cache::insert`); empty when
    /// unknown.
    ///
    /// ```
    /// #[global_allocator]
    /// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
    /// use pyheap::tracemalloc;
    /// fn main() {
    ///     tracemalloc::start(1);
    ///     let b = Box::new([0u8; 64]);
    ///     let tb = tracemalloc::get_object_traceback(&b).unwrap();
    ///     println!("allocated in {}", tb.line().unwrap().name());
    ///     tracemalloc::stop();
    /// }
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The frame with its function dropped, unless it has no line (the key of
    /// [`KeyType::Lineno`] statistics).
    ///
    /// [`KeyType::Lineno`]: super::KeyType::Lineno
    pub(crate) fn line_only(&self) -> Frame {
        Frame {
            filename: self.filename.clone(),
            lineno: self.lineno,
            name: if self.lineno == 0 {
                self.name.clone()
            } else {
                Arc::from("")
            },
        }
    }

    /// The frame with its line and function dropped (the key of [`KeyType::Filename`]
    /// statistics).
    ///
    /// [`KeyType::Filename`]: super::KeyType::Filename
    pub(crate) fn file_only(&self) -> Frame {
        Frame {
            filename: self.filename.clone(),
            lineno: 0,
            name: Arc::from(""),
        }
    }
}

/// Where a block was allocated: its frames, **most recent first** — `frames()[0]` is the
/// line of the allocation (the first frame outside pyheap, `alloc`, `core` and `std`), then
/// its caller, and so on, up to [`get_traceback_limit()`](super::get_traceback_limit) frames.
///
/// (Python's `Traceback` is a sequence from the oldest frame to the most recent; Rust's
/// backtraces list the most recent first, and so does this. Its `Display` prints Python's
/// format: oldest first, "most recent call last"; [`Traceback::format`] takes either order.)
///
/// ```
/// #[global_allocator]
/// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
/// use pyheap::tracemalloc;
/// fn main() {
///     tracemalloc::start(1);
///     let b = Box::new([0u8; 64]);
///     let tb = tracemalloc::get_object_traceback(&b).unwrap();
///     println!("{tb}"); // as Python prints a traceback: oldest frame first
///     assert!(tb.len() <= tracemalloc::get_traceback_limit());
///     tracemalloc::stop();
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Traceback {
    frames: Arc<[Frame]>,
}

impl Traceback {
    pub(crate) fn new(frames: Vec<Frame>) -> Traceback {
        Traceback {
            frames: frames.into(),
        }
    }

    /// The frames, most recent first.
    ///
    /// ```
    /// #[global_allocator]
    /// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
    /// use pyheap::tracemalloc;
    /// fn main() {
    ///     tracemalloc::start(1);
    ///     let b = Box::new([0u8; 64]);
    ///     let tb = tracemalloc::get_object_traceback(&b).unwrap();
    ///     assert_eq!(tb.frames().first(), tb.line()); // most recent first
    ///     tracemalloc::stop();
    /// }
    /// ```
    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }

    /// The most recent frame: the line of the allocation (`None` for an empty traceback).
    ///
    /// ```
    /// #[global_allocator]
    /// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
    /// use pyheap::tracemalloc;
    /// fn main() {
    ///     tracemalloc::start(1);
    ///     let b = Box::new([0u8; 64]);
    ///     let tb = tracemalloc::get_object_traceback(&b).unwrap();
    ///     assert!(tb.line().is_some());
    ///     tracemalloc::stop();
    /// }
    /// ```
    pub fn line(&self) -> Option<&Frame> {
        self.frames.first()
    }

    /// Frames in the traceback.
    ///
    /// ```
    /// #[global_allocator]
    /// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
    /// use pyheap::tracemalloc;
    /// fn main() {
    ///     tracemalloc::start(1);
    ///     let b = Box::new([0u8; 64]);
    ///     let tb = tracemalloc::get_object_traceback(&b).unwrap();
    ///     assert_eq!(tb.len(), tb.frames().len());
    ///     tracemalloc::stop();
    /// }
    /// ```
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether it has no frame (an allocation whose stack could not be walked).
    ///
    /// ```
    /// #[global_allocator]
    /// static GLOBAL: pyheap::PoolAlloc = pyheap::PoolAlloc;
    /// use pyheap::tracemalloc;
    /// fn main() {
    ///     tracemalloc::start(1);
    ///     let b = Box::new([0u8; 64]);
    ///     assert!(!tracemalloc::get_object_traceback(&b).unwrap().is_empty());
    ///     tracemalloc::stop();
    /// }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}
