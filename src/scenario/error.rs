//! Scenario errors: every one names the file, line and column, the field, what was expected, and a fix.

use miette::{Diagnostic, NamedSource, SourceSpan};

/// A problem in an input file, located in its source.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{file}:{line}:{col}: {message}")]
pub struct InputError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
    #[help]
    pub help: Option<String>,
    #[source_code]
    src: NamedSource<String>,
    #[label("here")]
    span: SourceSpan,
    /// Further errors found in the same input, in file order (shown after this one).
    #[related]
    pub related: Vec<InputError>,
}

impl InputError {
    /// An error at byte offset `pos` (clamped) of `text`.
    pub fn at(file: &str, text: &str, pos: usize, message: impl Into<String>, help: Option<String>) -> Self {
        let pos = floor_char_boundary(text, pos.min(text.len()));
        let (line, col) = super::ron_path::line_col(text, pos);
        let len = text[pos..].chars().next().map_or(0, |c| c.len_utf8());
        InputError {
            file: file.to_string(),
            line,
            col,
            message: message.into(),
            help,
            src: NamedSource::new(file, text.to_string()),
            span: (pos, len).into(),
            related: Vec::new(),
        }
    }

    /// Byte offset of the error in its source.
    pub fn offset(&self) -> usize {
        self.span.offset()
    }

    /// Every error this one carries: itself, then its related errors.
    pub fn count(&self) -> usize {
        1 + self.related.iter().map(InputError::count).sum::<usize>()
    }

    /// One error carrying all of `errors` (flattened), in file order (files as first given, then position);
    /// `None` if
    /// there are none.
    pub fn collect(errors: Vec<InputError>) -> Option<InputError> {
        fn flatten(mut e: InputError, out: &mut Vec<InputError>) {
            let related = std::mem::take(&mut e.related);
            out.push(e);
            for r in related {
                flatten(r, out);
            }
        }
        let mut flat = Vec::new();
        for e in errors {
            flatten(e, &mut flat);
        }
        // Files in the order they first appear, each file's errors by position.
        let mut files: Vec<String> = Vec::new();
        for e in &flat {
            if !files.contains(&e.file) {
                files.push(e.file.clone());
            }
        }
        let rank = |e: &InputError| files.iter().position(|f| *f == e.file).unwrap_or(0);
        flat.sort_by_key(|e| (rank(e), e.offset()));
        flat.dedup_by(|a, b| a.file == b.file && a.offset() == b.offset() && a.message == b.message);
        let mut it = flat.into_iter();
        let mut first = it.next()?;
        first.related = it.collect();
        Some(first)
    }

    /// The error with `message` replaced (location and help kept).
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }
    /// An error at a 1-based line and column (as the `ron` parser reports them).
    pub fn at_line_col(
        file: &str,
        text: &str,
        line: usize,
        col: usize,
        message: impl Into<String>,
        help: Option<String>,
    ) -> Self {
        let mut pos = 0;
        for (i, l) in text.split_inclusive('\n').enumerate() {
            if i + 1 == line {
                pos += l.char_indices().nth(col.saturating_sub(1)).map_or(l.len(), |(b, _)| b);
                break;
            }
            pos += l.len();
        }
        let mut e = Self::at(file, text, pos, message, help);
        (e.line, e.col) = (line.max(1), col.max(1));
        e
    }
    /// An error about a whole file (it could not be read, say): line 1, column 1.
    pub fn file(file: &str, message: impl Into<String>, help: Option<String>) -> Self {
        Self::at(file, "", 0, message, help)
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
