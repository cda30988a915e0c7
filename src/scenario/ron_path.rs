//! A span map of RON text: finds where the value at a path like `gateway.report_every` or `faults[0].r_ohm`
//! sits in the source, so validation errors can name file:line:column and sweeps can override fields by path
//! while keeping the rest of the text (comments, enum variants) exactly as written.
//!
//! This is a tolerant scanner, not a second RON parser: it only needs to agree with `ron` on where values
//! start and end in text that `ron` itself accepts.

use std::ops::Range;

/// One step of a path: a struct field / map key, or a sequence index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    Field(String),
    Index(usize),
}

/// Parses `a.b[2].c` (also `a.b.2.c`) into segments.
pub fn parse_path(path: &str) -> Result<Vec<Seg>, String> {
    let mut segs = Vec::new();
    for part in path.split('.') {
        if part.is_empty() {
            return Err(format!("path `{path}` has an empty segment"));
        }
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            match name.parse::<usize>() {
                Ok(i) => segs.push(Seg::Index(i)),
                Err(_) => segs.push(Seg::Field(name.to_string())),
            }
        }
        while let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or_else(|| format!("path `{path}`: unclosed `[`"))?;
            let i = r[..end].parse::<usize>().map_err(|_| format!("path `{path}`: `{}` is not an index", &r[..end]))?;
            segs.push(Seg::Index(i));
            rest = &r[end + 1..];
        }
        if !rest.is_empty() {
            return Err(format!("path `{path}`: unexpected `{rest}`"));
        }
    }
    Ok(segs)
}

#[derive(Debug)]
struct Node {
    span: Range<usize>,
    /// The whole item in its parent: from its key (if any) to after its trailing comma.
    item: Range<usize>,
    /// Named children (struct fields, map keys) and positional children (tuple/seq items) in order.
    children: Vec<(Option<String>, Node)>,
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    depth: usize,
}

const MAX_DEPTH: usize = 128;

impl Scanner<'_> {
    fn skip_ws(&mut self) {
        loop {
            while self.i < self.b.len() && (self.b[self.i] as char).is_ascii_whitespace() {
                self.i += 1;
            }
            if self.b[self.i..].starts_with(b"//") {
                while self.i < self.b.len() && self.b[self.i] != b'\n' {
                    self.i += 1;
                }
            } else if self.b[self.i..].starts_with(b"/*") {
                let mut level = 0usize;
                while self.i < self.b.len() {
                    if self.b[self.i..].starts_with(b"/*") {
                        level += 1;
                        self.i += 2;
                    } else if self.b[self.i..].starts_with(b"*/") {
                        level -= 1;
                        self.i += 2;
                        if level == 0 {
                            break;
                        }
                    } else {
                        self.i += 1;
                    }
                }
            } else {
                return;
            }
        }
    }
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn ident(&mut self) -> Option<Range<usize>> {
        let s = self.i;
        if self.b[self.i..].starts_with(b"r#") {
            self.i += 2;
        }
        while self.i < self.b.len() && (self.b[self.i].is_ascii_alphanumeric() || self.b[self.i] == b'_') {
            self.i += 1;
        }
        (self.i > s).then_some(s..self.i)
    }
    fn string(&mut self) -> Option<()> {
        // at '"', 'r', or '\''
        let q = self.b[self.i];
        if q == b'r' {
            self.i += 1;
            let mut hashes = 0;
            while self.peek() == Some(b'#') {
                hashes += 1;
                self.i += 1;
            }
            if self.peek() != Some(b'"') {
                return None;
            }
            self.i += 1;
            loop {
                let c = self.peek()?;
                self.i += 1;
                if c == b'"' && self.b[self.i..].iter().take(hashes).filter(|&&h| h == b'#').count() == hashes {
                    self.i += hashes;
                    return Some(());
                }
            }
        }
        self.i += 1;
        loop {
            let c = self.peek()?;
            self.i += 1;
            if c == b'\\' {
                self.i += 1;
            } else if c == q {
                return Some(());
            }
        }
    }
    fn value(&mut self) -> Option<Node> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        self.skip_ws();
        let start = self.i;
        let c = self.peek()?;
        let mut children = Vec::new();
        if c == b'"' || c == b'\'' || (c == b'r' && matches!(self.b.get(self.i + 1), Some(b'"') | Some(b'#'))) {
            self.string()?;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            self.ident()?;
            self.skip_ws();
            if self.peek() == Some(b'(') {
                children = self.group(b')')?;
            }
        } else if c == b'(' {
            children = self.group(b')')?;
        } else if c == b'[' {
            children = self.group(b']')?;
        } else if c == b'{' {
            children = self.group(b'}')?;
        } else {
            // number or other scalar: up to a delimiter
            while let Some(c) = self.peek() {
                if matches!(c, b',' | b')' | b']' | b'}' | b':') || c.is_ascii_whitespace() || c == b'/' {
                    break;
                }
                self.i += 1;
            }
            if self.i == start {
                return None;
            }
        }
        self.depth -= 1;
        Some(Node { span: start..self.i, item: start..self.i, children })
    }
    /// At an opening bracket: reads `name: value` / `key: value` / `value` items up to `close`.
    fn group(&mut self, close: u8) -> Option<Vec<(Option<String>, Node)>> {
        self.i += 1;
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            if self.peek()? == close {
                self.i += 1;
                return Some(items);
            }
            let save = self.i;
            // `ident:` (struct field) — but not `ident(`...
            let mut name = None;
            if let Some(r) = self.ident() {
                self.skip_ws();
                if self.peek() == Some(b':') {
                    name = Some(String::from_utf8_lossy(&self.b[r]).trim_start_matches("r#").to_string());
                    self.i += 1;
                } else {
                    self.i = save;
                }
            }
            let v = self.value()?;
            self.skip_ws();
            if name.is_none() && self.peek() == Some(b':') {
                // map entry `key: value`: name it by the key text without quotes
                self.i += 1;
                let key = String::from_utf8_lossy(&self.b[v.span.clone()]).trim_matches('"').to_string();
                let mut val = self.value()?;
                val.item.start = save;
                items.push((Some(key), val));
            } else {
                let mut v = v;
                v.item.start = save;
                items.push((name, v));
            }
            self.skip_ws();
            match self.peek()? {
                b',' => self.i += 1,
                c if c == close => {}
                _ => return None,
            }
            if let Some(last) = items.last_mut() {
                last.1.item.end = self.i;
            }
        }
    }
}

fn root(text: &str) -> Option<Node> {
    let mut s = Scanner { b: text.as_bytes(), i: 0, depth: 0 };
    // skip `#![enable(...)]` attributes
    loop {
        s.skip_ws();
        if s.b[s.i..].starts_with(b"#!") {
            while s.i < s.b.len() && s.b[s.i] != b']' {
                s.i += 1;
            }
            s.i += 1;
        } else {
            break;
        }
    }
    s.value()
}

/// The byte range of the value at `path`, if the text has it.
pub fn find(text: &str, path: &[Seg]) -> Option<Range<usize>> {
    let mut node = root(text)?;
    for seg in path {
        let idx = match seg {
            Seg::Field(f) => node.children.iter().position(|(n, _)| n.as_deref() == Some(f.as_str()))?,
            Seg::Index(i) => {
                let mut positional = node.children.iter().enumerate().filter(|(_, (n, _))| n.is_none()).map(|(k, _)| k);
                positional.nth(*i)?
            }
        };
        node = node.children.swap_remove(idx).1;
        // Look through `Some(...)`: a field holding `Some(x)` is addressed as x.
        while node.children.len() == 1 && node.children[0].0.is_none() && text[node.span.clone()].starts_with("Some") {
            node = node.children.swap_remove(0).1;
        }
    }
    Some(node.span)
}

/// One item of the text: a struct field, map entry or sequence element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// Its path, e.g. `gateway.report_every` or `faults[0].r_ohm`.
    pub path: String,
    /// From its key (if any) to after its trailing comma.
    pub item: Range<usize>,
    /// Its value.
    pub value: Range<usize>,
    /// A struct field or map entry (`name: value`), not a positional element.
    pub named: bool,
    /// An element of a `[...]` sequence.
    pub in_seq: bool,
}

/// Every item of the text, outermost first (a parent before its children). Empty if the scanner cannot
/// read the text. `Some(x)` is looked through, as [`find`] does.
pub fn items(text: &str) -> Vec<Item> {
    fn walk(text: &str, node: &Node, prefix: &str, out: &mut Vec<Item>) {
        let seq = text[node.span.clone()].starts_with('[');
        let mut pos = 0usize;
        for (name, child) in &node.children {
            let path = match name {
                Some(n) if prefix.is_empty() => n.clone(),
                Some(n) => format!("{prefix}.{n}"),
                None => {
                    pos += 1;
                    format!("{prefix}[{}]", pos - 1)
                }
            };
            let mut inner = child;
            while inner.children.len() == 1
                && inner.children[0].0.is_none()
                && text[inner.span.clone()].starts_with("Some")
            {
                inner = &inner.children[0].1;
            }
            out.push(Item {
                path: path.clone(),
                item: child.item.clone(),
                value: inner.span.clone(),
                named: name.is_some(),
                in_seq: seq && name.is_none(),
            });
            walk(text, inner, &path, out);
        }
    }
    let mut out = Vec::new();
    if let Some(r) = root(text) {
        walk(text, &r, "", &mut out);
    }
    out
}

/// The innermost item whose extent (key to trailing comma) contains byte offset `pos`.
pub fn item_at(items: &[Item], pos: usize) -> Option<&Item> {
    items.iter().filter(|i| i.item.start <= pos && pos < i.item.end.max(i.item.start + 1)).min_by_key(|i| i.item.len())
}

/// 1-based line and column (in characters) of byte offset `pos`.
pub fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(text.len());
    let before = &text[..pos];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Replaces the value at `path` with `replacement` (RON text). Errors if the path is not in the text.
pub fn replace(text: &str, path: &str, replacement: &str) -> Result<String, String> {
    let segs = parse_path(path)?;
    let span = find(text, &segs).ok_or_else(|| {
        format!("the base scenario has no field `{path}` to override (write it out in the base file)")
    })?;
    Ok(format!("{}{}{}", &text[..span.start], replacement, &text[span.end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"// a comment with ( and "
Scenario(
    name: "x(y", /* block ) */
    seed: 42,
    grid: Some((network: File("a.json"), steps: [1, 2, 3])),
    faults: [ShortCircuit(line: 5, r_ohm: 1.0), Open(line: 7)],
    map: {"k": (v: 1)},
)"#;

    fn at(path: &str) -> &'static str {
        &TEXT[find(TEXT, &parse_path(path).unwrap()).unwrap()]
    }

    #[test]
    fn finds_values_by_path() {
        assert_eq!(at("name"), "\"x(y\"");
        assert_eq!(at("seed"), "42");
        assert_eq!(at("grid.network"), "File(\"a.json\")");
        assert_eq!(at("grid.steps[1]"), "2");
        assert_eq!(at("faults[1].line"), "7");
        assert_eq!(at("faults.0.r_ohm"), "1.0");
        assert_eq!(at("map.k.v"), "1");
        assert!(find(TEXT, &parse_path("nope").unwrap()).is_none());
        assert_eq!(line_col(TEXT, TEXT.find("seed").unwrap()), (4, 5));
        let t = replace(TEXT, "faults[0].r_ohm", "5.0").unwrap();
        assert!(t.contains("r_ohm: 5.0"));
    }

    #[test]
    fn items_carry_paths_keys_and_trailing_commas() {
        let its = items(TEXT);
        let seed = its.iter().find(|i| i.path == "seed").unwrap();
        assert_eq!(&TEXT[seed.item.clone()], "seed: 42,");
        let f1 = its.iter().find(|i| i.path == "faults[1]").unwrap();
        assert!(f1.in_seq && !f1.named);
        assert_eq!(&TEXT[f1.value.clone()], "Open(line: 7)");
        assert!(its.iter().any(|i| i.path == "grid.steps[2]"));
        let pos = TEXT.find("r_ohm").unwrap();
        assert_eq!(item_at(&its, pos).unwrap().path, "faults[0].r_ohm");
    }

    #[test]
    fn never_panics_on_garbage() {
        for t in ["", "(", "Scenario(a: ", "[1,2", "\"abc", "/* x", "r#\"x", "((((((((", ")"] {
            let _ = find(t, &parse_path("a.b[3]").unwrap());
        }
        let deep = "(".repeat(10_000);
        assert!(find(&deep, &parse_path("a").unwrap()).is_none());
    }
}
