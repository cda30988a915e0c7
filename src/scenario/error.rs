//! Scenario errors: every one names the file, line and column, the field, what was expected, and a fix.

use miette::{Diagnostic, MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};

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
    src: Excerpt,
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
            src: Excerpt::around(file, text, pos, (line, col)),
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

/// Lines of context shown above and below an error's line (miette's default).
const CONTEXT_LINES: usize = 1;
/// Longest line shown whole, bytes; a longer one (a minified JSON file is a single line) is shown as a
/// window of `WINDOW_BYTES` either side of the error.
const LINE_MAX_BYTES: usize = 200;
const WINDOW_BYTES: usize = 60;
/// What marks a line cut short in a window (as many bytes as it stands for, so offsets stay put).
const CUT: &str = "...";

/// The part of an input file an error shows: its line with a line of context either side, or, when a line
/// there is too long to read on a terminal, a window of the error's line around the error. Kept instead of
/// the whole text: an error costs a few hundred bytes whatever the file's size, and a minified file's error
/// shows the 120 bytes around it rather than the whole file on one line.
#[derive(Debug)]
struct Excerpt {
    name: String,
    text: String,
    /// Byte offset of `text` in the file.
    base: usize,
    /// 0-based line and column (characters) of `text`'s start.
    line: usize,
    col: usize,
    line_count: usize,
    /// The error's byte offset and its 0-based line and column.
    at: (usize, usize, usize),
}

impl Excerpt {
    /// The excerpt of `text` around byte `pos` (a char boundary), which lies at 1-based `line_col`.
    fn around(file: &str, text: &str, pos: usize, line_col: (usize, usize)) -> Excerpt {
        let at = (pos, line_col.0.saturating_sub(1), line_col.1.saturating_sub(1));
        let line_start = |p: usize| text[..p].rfind('\n').map_or(0, |k| k + 1);
        let line_end = |p: usize| text[p..].find('\n').map_or(text.len(), |k| p + k);
        let (ls, le) = (line_start(pos), line_end(pos));
        // One line of context each side, as miette shows it.
        let mut from = ls;
        for _ in 0..CONTEXT_LINES {
            if from > 0 {
                from = line_start(from - 1);
            }
        }
        let mut to = le;
        for _ in 0..CONTEXT_LINES {
            if to < text.len() {
                to = line_end(to + 1);
            }
        }
        let long = text[from..to].split('\n').any(|l| l.len() > LINE_MAX_BYTES);
        if !long {
            let lines_before = text[from..ls].matches('\n').count();
            return Excerpt {
                name: file.to_string(),
                text: text[from..to].to_string(),
                base: from,
                line: at.1.saturating_sub(lines_before),
                col: 0,
                line_count: text[from..to].matches('\n').count() + 1,
                at,
            };
        }
        // A window of the error's line; a cut end is marked by `CUT` standing on the bytes it hides.
        let cut_lo = pos.saturating_sub(WINDOW_BYTES) >= ls + CUT.len();
        let cut_hi = pos + WINDOW_BYTES + CUT.len() <= le;
        let lo = if cut_lo { ceil_char_boundary(text, pos - WINDOW_BYTES) } else { ls };
        let hi = if cut_hi { floor_char_boundary(text, pos + WINDOW_BYTES).max(pos) } else { le };
        let mut shown = String::with_capacity(hi - lo + 2 * CUT.len());
        if cut_lo {
            shown.push_str(CUT);
        }
        shown.push_str(&text[lo..hi]);
        if cut_hi {
            shown.push_str(CUT);
        }
        let base = if cut_lo { lo - CUT.len() } else { lo };
        Excerpt {
            name: file.to_string(),
            text: shown,
            base,
            line: at.1,
            col: text[ls..base].chars().count(),
            line_count: 1,
            at,
        }
    }
}

impl SourceCode for Excerpt {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let off = span.offset();
        if off < self.base || off > self.base + self.text.len() {
            return Err(MietteError::OutOfBounds);
        }
        // A span reaching past a window's end (the line's newline) is cut at it.
        let len = span.len().min(self.base + self.text.len() - off);
        if context_lines_before == 0 && context_lines_after == 0 && off == self.at.0 {
            // The span alone, where the location line of the report reads its line and column.
            let k = off - self.base;
            return Ok(Box::new(MietteSpanContents::new_named(
                self.name.clone(),
                &self.text.as_bytes()[k..k + len],
                SourceSpan::new(off.into(), len),
                self.at.1,
                self.at.2,
                1,
            )));
        }
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            self.text.as_bytes(),
            SourceSpan::new(self.base.into(), self.text.len()),
            self.line,
            self.col,
            self.line_count,
        )))
    }
}

fn ceil_char_boundary(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
