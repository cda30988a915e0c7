//! Locating elements in JSON text (network files): the byte offset of the value at a path such as
//! `lines[2].length_km`, so an error about an element points at it in the file. A tolerant scanner over text
//! that `serde_json` has already accepted, with the same path syntax as [`super::ron_path`].

use super::InputError;
use super::ron_path::{Seg, parse_path};

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scan<'_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && self.b[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn string(&mut self) -> Option<std::ops::Range<usize>> {
        if self.b.get(self.i) != Some(&b'"') {
            return None;
        }
        let s = self.i + 1;
        self.i += 1;
        while self.i < self.b.len() {
            match self.b[self.i] {
                b'\\' => self.i += 2,
                b'"' => {
                    self.i += 1;
                    return Some(s..self.i - 1);
                }
                _ => self.i += 1,
            }
        }
        None
    }
    /// Skips one value (at most `depth` levels deep).
    fn skip(&mut self, depth: usize) -> Option<()> {
        self.ws();
        match *self.b.get(self.i)? {
            b'"' => self.string().map(|_| ()),
            open @ (b'{' | b'[') => {
                if depth == 0 {
                    return None;
                }
                let close = if open == b'{' { b'}' } else { b']' };
                self.i += 1;
                loop {
                    self.ws();
                    if *self.b.get(self.i)? == close {
                        self.i += 1;
                        return Some(());
                    }
                    if open == b'{' {
                        self.string()?;
                        self.ws();
                        (*self.b.get(self.i)? == b':').then_some(())?;
                        self.i += 1;
                    }
                    self.skip(depth - 1)?;
                    self.ws();
                    if *self.b.get(self.i)? == b',' {
                        self.i += 1;
                    }
                }
            }
            _ => {
                while self.i < self.b.len() && !matches!(self.b[self.i], b',' | b'}' | b']') {
                    self.i += 1;
                }
                Some(())
            }
        }
    }
    /// At a value: moves to the start of the child `seg`.
    fn child(&mut self, seg: &Seg) -> Option<()> {
        self.ws();
        match (seg, *self.b.get(self.i)?) {
            (Seg::Field(f), b'{') => {
                self.i += 1;
                loop {
                    self.ws();
                    let key = self.string()?;
                    self.ws();
                    (*self.b.get(self.i)? == b':').then_some(())?;
                    self.i += 1;
                    self.ws();
                    if &self.b[key] == f.as_bytes() {
                        return Some(());
                    }
                    self.skip(64)?;
                    self.ws();
                    (*self.b.get(self.i)? == b',').then_some(())?;
                    self.i += 1;
                }
            }
            (Seg::Index(k), b'[') => {
                self.i += 1;
                for _ in 0..*k {
                    self.skip(64)?;
                    self.ws();
                    (*self.b.get(self.i)? == b',').then_some(())?;
                    self.i += 1;
                }
                self.ws();
                (*self.b.get(self.i)? != b']').then_some(())
            }
            _ => None,
        }
    }
}

/// Byte offset of the value at `path` in JSON `text`, if the text has it.
pub fn find(text: &str, path: &str) -> Option<usize> {
    let segs = parse_path(path).ok()?;
    let mut s = Scan { b: text.as_bytes(), i: 0 };
    for seg in &segs {
        s.child(seg)?;
    }
    s.ws();
    Some(s.i)
}

/// An error about a JSON file, located: `serde_json`'s "at line L column C", or an element named by a leading
/// path (`lines[2] (index 3 'l3'): length_km = ...`) at that element, or at its field when the message names
/// one; else the start of the file.
pub fn error(file: &str, text: &str, message: &str) -> InputError {
    if let Some(k) = message.rfind(" at line ") {
        let mut nums = message[k + 9..].split(" column ").map(|x| x.trim().parse::<usize>().ok());
        if let (Some(Some(line)), Some(Some(col))) = (nums.next(), nums.next()) {
            return InputError::at_line_col(file, text, line, col, &message[..k], None);
        }
    }
    let head: String =
        message.chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '[' | ']')).collect();
    if head.contains('[')
        && let Some(pos) = find(text, &head)
    {
        // The first word of the message that is a field of the element.
        let mut rest = &message[head.len()..];
        if rest.starts_with(" (index")
            && let Some(k) = rest.find(')')
        {
            rest = &rest[k + 1..];
        }
        let field_pos = rest
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.len() > 1 && w.chars().next().is_some_and(|c| c.is_ascii_lowercase()))
            .find_map(|w| find(text, &format!("{head}.{w}")));
        return InputError::at(file, text, field_pos.unwrap_or(pos), message, None);
    }
    InputError::at(file, text, 0, message, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_elements_and_fields() {
        let t =
            r#"{"meta": {"name": "n\"x"}, "lines": [{"index": 0, "a": [1, {"b": 2}]}, {"index": 3, "length_km": -1}]}"#;
        assert_eq!(&t[find(t, "lines[1].length_km").unwrap()..][..2], "-1");
        assert_eq!(&t[find(t, "lines[0].a[1].b").unwrap()..][..1], "2");
        assert!(find(t, "lines[2]").is_none());
        let e = error("n.json", t, "lines[1] (index 3): length_km = -1 must be positive");
        assert_eq!(&t[e.offset()..][..2], "-1");
        let e = error("n.json", "{\n  \"x\": }", "invalid network JSON: expected value at line 2 column 8");
        assert_eq!((e.line, e.col), (2, 8));
    }

    #[test]
    fn never_panics_on_garbage() {
        for t in ["", "{", "[", "{\"lines\": [", "\"", "{\"a\" 1}", "[1,"] {
            let _ = find(t, "lines[3].x");
            let _ = error("f", t, "lines[3] (index 3): x = 1");
        }
    }
}
