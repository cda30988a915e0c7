//! Generates the scenario reference (docs/scenario.md, `gridtwin schema`) from the schema's own source: the
//! serde types reachable from `Scenario` and the sweep `Plan`, their doc comments, serde attributes and
//! defaults. Run by build.rs; a test keeps the checked-in docs/scenario.md equal to it.

use quote::ToTokens;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A type definition found in the sources.
struct Def {
    file: PathBuf,
    item: Item,
}

enum Item {
    Struct(syn::ItemStruct),
    Enum(syn::ItemEnum),
}

/// Everything parsed: definitions by name, `fn name() -> T { expr }` bodies and `impl Default` literals by file.
#[derive(Default)]
struct Sources {
    defs: BTreeMap<String, Vec<Def>>,
    fns: BTreeMap<(PathBuf, String), String>,
    defaults: BTreeMap<String, BTreeMap<String, String>>,
}

/// Types documented by a pointer instead of being expanded.
const OPAQUE: &[(&str, &str)] = &[("NetworkData", "the neutral `network.json` format (see README), inline")];

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    v.sort();
    for p in v {
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

fn docs(attrs: &[syn::Attribute]) -> String {
    let mut lines = Vec::new();
    for a in attrs {
        if let syn::Meta::NameValue(nv) = &a.meta
            && nv.path.is_ident("doc")
            && let syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) = &nv.value
        {
            lines.push(s.value().trim().to_string());
        }
    }
    lines.join(" ").trim().to_string()
}

/// serde attributes: (`default` given, `default = "fn"`, rename, skip, deny_unknown_fields, flatten).
#[derive(Default)]
struct Serde {
    default: bool,
    default_fn: Option<String>,
    rename: Option<String>,
    skip: bool,
    flatten: bool,
}

fn serde_attrs(attrs: &[syn::Attribute]) -> Serde {
    let mut s = Serde::default();
    for a in attrs {
        if !a.path().is_ident("serde") {
            continue;
        }
        let _ = a.parse_nested_meta(|m| {
            if m.path.is_ident("default") {
                s.default = true;
                if let Ok(v) = m.value() {
                    let lit: syn::LitStr = v.parse()?;
                    s.default_fn = Some(lit.value());
                }
            } else if m.path.is_ident("rename") {
                if let Ok(v) = m.value() {
                    let lit: syn::LitStr = v.parse()?;
                    s.rename = Some(lit.value());
                }
            } else if m.path.is_ident("skip") || m.path.is_ident("skip_deserializing") {
                s.skip = true;
            } else if m.path.is_ident("flatten") {
                s.flatten = true;
            } else if let Ok(v) = m.value() {
                let _: syn::Expr = v.parse()?;
            }
            Ok(())
        });
    }
    s
}

fn derives_deserialize(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| a.path().is_ident("derive") && a.to_token_stream().to_string().contains("Deserialize"))
}

/// Token text tidied for reading: `"15min" . into ()` -> `"15min"`, `1_000_000` kept.
fn tidy(tokens: String) -> String {
    let mut t = tokens
        .replace(" . ", ".")
        .replace(" (", "(")
        .replace("( ", "(")
        .replace(" )", ")")
        .replace(" ,", ",")
        .replace(" :: ", "::")
        .replace("& ", "&")
        .replace(" !", "!");
    for suffix in [".into()", ".to_string()", ".to_owned()", "String::from"] {
        t = t.replace(suffix, "");
    }
    t.trim().to_string()
}

impl Sources {
    fn load(roots: &[PathBuf]) -> Sources {
        let mut s = Sources::default();
        let mut files = Vec::new();
        for r in roots {
            rs_files(r, &mut files);
        }
        for f in files {
            let Ok(text) = std::fs::read_to_string(&f) else { continue };
            let Ok(ast) = syn::parse_file(&text) else { continue };
            s.collect(&f, &ast.items);
        }
        s
    }

    fn collect(&mut self, file: &Path, items: &[syn::Item]) {
        for it in items {
            match it {
                syn::Item::Struct(x) if derives_deserialize(&x.attrs) || has_manual_serde(x) => {
                    self.defs
                        .entry(x.ident.to_string())
                        .or_default()
                        .push(Def { file: file.to_path_buf(), item: Item::Struct(x.clone()) });
                }
                syn::Item::Enum(x) if derives_deserialize(&x.attrs) => {
                    self.defs
                        .entry(x.ident.to_string())
                        .or_default()
                        .push(Def { file: file.to_path_buf(), item: Item::Enum(x.clone()) });
                }
                syn::Item::Fn(f) if f.sig.inputs.is_empty() && f.block.stmts.len() == 1 => {
                    if let syn::Stmt::Expr(e, None) = &f.block.stmts[0] {
                        self.fns.insert(
                            (file.to_path_buf(), f.sig.ident.to_string()),
                            tidy(e.to_token_stream().to_string()),
                        );
                    }
                }
                syn::Item::Impl(imp) if imp.trait_.as_ref().is_some_and(|t| t.1.is_ident("Default")) => {
                    let name = imp.self_ty.to_token_stream().to_string();
                    for ii in &imp.items {
                        if let syn::ImplItem::Fn(f) = ii
                            && let Some(syn::Stmt::Expr(syn::Expr::Struct(lit), None)) = f.block.stmts.last()
                        {
                            let m = self.defaults.entry(name.clone()).or_default();
                            for fv in &lit.fields {
                                if let syn::Member::Named(id) = &fv.member {
                                    m.insert(id.to_string(), tidy(fv.expr.to_token_stream().to_string()));
                                }
                            }
                        }
                    }
                }
                syn::Item::Mod(m) => {
                    if let Some((_, items)) = &m.content {
                        self.collect(file, items);
                    }
                }
                _ => {}
            }
        }
    }

    /// The definition `ty` (a path as written, e.g. `crate::grid::GridConfig`) refers to, seen from `from`.
    fn resolve(&self, ty: &syn::Path, from: &Path) -> Option<&Def> {
        let name = ty.segments.last()?.ident.to_string();
        let defs = self.defs.get(&name)?;
        if defs.len() == 1 {
            return defs.first();
        }
        let hint: Vec<String> = ty.segments.iter().map(|s| s.ident.to_string()).filter(|s| s != "crate").collect();
        defs.iter().max_by_key(|d| {
            let p = d.file.to_string_lossy().to_string();
            let same_file = d.file == from;
            let same_dir = d.file.parent() == from.parent();
            let hinted = hint.iter().filter(|h| p.contains(&format!("/{h}"))).count();
            (hinted, same_file, same_dir)
        })
    }
}

fn has_manual_serde(x: &syn::ItemStruct) -> bool {
    // `Dur` and the like: a tuple struct documented as a string.
    x.ident == "Dur"
}

/// What a field's type reads as, and the named types it refers to (to document next).
fn render_type(ty: &syn::Type, s: &Sources, from: &Path, refs: &mut Vec<(String, PathBuf)>) -> String {
    match ty {
        syn::Type::Path(p) => {
            let Some(last) = p.path.segments.last() else { return "?".into() };
            let name = last.ident.to_string();
            let args: Vec<&syn::Type> = match &last.arguments {
                syn::PathArguments::AngleBracketed(a) => a
                    .args
                    .iter()
                    .filter_map(|g| if let syn::GenericArgument::Type(t) = g { Some(t) } else { None })
                    .collect(),
                _ => Vec::new(),
            };
            match (name.as_str(), args.as_slice()) {
                ("Option", [t]) => render_type(t, s, from, refs),
                ("Box", [t]) => render_type(t, s, from, refs),
                ("Vec", [t]) => format!("[{}, ...]", render_type(t, s, from, refs)),
                ("BTreeMap" | "HashMap", [k, v]) => {
                    format!("{{{}: {}, ...}}", render_type(k, s, from, refs), render_type(v, s, from, refs))
                }
                ("String", _) => "text".into(),
                ("Dur" | "SimDuration", _) => "duration (\"15min\", \"250ms\", \"24h\")".into(),
                ("bool", _) => "bool".into(),
                ("f64" | "f32", _) => "number".into(),
                ("u8" | "u16" | "u32" | "u64" | "usize" | "i8" | "i16" | "i32" | "i64" | "isize", _) => {
                    format!("integer ({name})")
                }
                _ => {
                    if let Some((_, what)) = OPAQUE.iter().find(|(n, _)| *n == name) {
                        return (*what).to_string();
                    }
                    match s.resolve(&p.path, from) {
                        Some(d) => {
                            refs.push((name.clone(), d.file.clone()));
                            format!("[`{name}`](#{})", name.to_lowercase())
                        }
                        None => format!("`{name}`"),
                    }
                }
            }
        }
        syn::Type::Tuple(t) => {
            let parts: Vec<String> = t.elems.iter().map(|e| render_type(e, s, from, refs)).collect();
            format!("({})", parts.join(", "))
        }
        syn::Type::Array(a) => format!("[{}; N]", render_type(&a.elem, s, from, refs)),
        other => format!("`{}`", tidy(other.to_token_stream().to_string())),
    }
}

fn is_option(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Option"))
}

fn plain_default(ty: &syn::Type) -> Option<&'static str> {
    let syn::Type::Path(p) = ty else { return None };
    let name = p.path.segments.last()?.ident.to_string();
    Some(match name.as_str() {
        "Option" => "none",
        "Vec" => "[]",
        "BTreeMap" | "HashMap" => "{}",
        "bool" => "false",
        "String" => "\"\"",
        "f64" | "f32" => "0.0",
        "u8" | "u16" | "u32" | "u64" | "usize" | "i8" | "i16" | "i32" | "i64" | "isize" => "0",
        _ => return None,
    })
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// Markdown rows for named fields.
fn fields_table(
    out: &mut String,
    fields: &syn::FieldsNamed,
    owner: &str,
    struct_default: bool,
    s: &Sources,
    from: &Path,
    refs: &mut Vec<(String, PathBuf)>,
) {
    out.push_str("| field | type | required / default | meaning |\n|---|---|---|---|\n");
    for f in &fields.named {
        let attrs = serde_attrs(&f.attrs);
        if attrs.skip {
            continue;
        }
        let Some(id) = &f.ident else { continue };
        let name = attrs.rename.clone().unwrap_or_else(|| id.to_string().trim_start_matches("r#").to_string());
        let ty = render_type(&f.ty, s, from, refs);
        let default = if let Some(func) = &attrs.default_fn {
            match s.fns.get(&(from.to_path_buf(), func.clone())) {
                Some(v) => format!("`{v}`"),
                None => format!("`{func}()`"),
            }
        } else if attrs.default || struct_default {
            match s.defaults.get(owner).and_then(|m| m.get(&name)).filter(|_| struct_default || !attrs.default) {
                Some(v) => format!("`{v}`"),
                None => match plain_default(&f.ty) {
                    Some(v) => format!("`{v}`"),
                    None => "its defaults".into(),
                },
            }
        } else if is_option(&f.ty) {
            "`none`".into()
        } else if attrs.flatten {
            "(fields inline)".into()
        } else {
            "**required**".into()
        };
        let _ = writeln!(out, "| `{name}` | {} | {} | {} |", cell(&ty), cell(&default), cell(&docs(&f.attrs)));
    }
    out.push('\n');
}

/// The reference as Markdown.
pub fn generate(root: &Path) -> String {
    let s = Sources::load(&[root.join("src"), root.join("firmware/src")]);
    let mut out = String::from(
        "# Scenario reference\n\n\
         Generated from the schema's source (the serde types and their doc comments) by `build.rs`; print it with \
         `gridtwin schema`. Do not edit by hand: `GRIDTWIN_BLESS=1 cargo test --test it reference` rewrites it, \
         and `cargo test` fails while it is stale.\n\n\
         Files are RON. Every struct denies unknown fields; optional sections may be written without `Some(...)`. \
         Durations are text with a unit (`ns`, `us`, `ms`, `s`, `min`, `h`, `d`), never negative. Units are in \
         the field names (`_kw`, `_m`, `_ohm`, `_pct`, ...). Names of models resolve to `models/<name>.ron` \
         beside the scenario or built in; relative paths resolve against the scenario's directory.\n\n\
         Roots: a scenario file is a [`Scenario`](#scenario); a sweep plan is a [`Sweep`](#plan) \
         ([`Plan`](#plan)).\n\n",
    );
    let mut queue: VecDeque<(String, PathBuf)> = VecDeque::new();
    let scenario_file = root.join("src/scenario/mod.rs");
    let sweep_file = root.join("src/sweep/mod.rs");
    queue.push_back(("Scenario".into(), scenario_file));
    queue.push_back(("Plan".into(), sweep_file));
    let mut done: BTreeSet<String> = BTreeSet::new();
    while let Some((name, hint_file)) = queue.pop_front() {
        if !done.insert(name.clone()) {
            continue;
        }
        let Some(defs) = s.defs.get(&name) else { continue };
        let def = defs.iter().find(|d| d.file == hint_file).unwrap_or(&defs[0]);
        let rel = def.file.strip_prefix(root).unwrap_or(&def.file).display().to_string();
        let mut refs = Vec::new();
        let _ = writeln!(out, "## `{name}`\n");
        match &def.item {
            Item::Struct(x) => {
                let d = docs(&x.attrs);
                if !d.is_empty() {
                    let _ = writeln!(out, "{d}\n");
                }
                let _ = writeln!(out, "_Defined in `{rel}`._\n");
                let struct_default = serde_attrs(&x.attrs).default;
                match &x.fields {
                    syn::Fields::Named(n) => fields_table(&mut out, n, &name, struct_default, &s, &def.file, &mut refs),
                    syn::Fields::Unnamed(u) => {
                        let parts: Vec<String> =
                            u.unnamed.iter().map(|f| render_type(&f.ty, &s, &def.file, &mut refs)).collect();
                        let shown = if name == "Dur" {
                            "duration text, e.g. `\"15min\"`".to_string()
                        } else {
                            format!("`({})`", parts.join(", "))
                        };
                        let _ = writeln!(out, "Written as {shown}.\n");
                    }
                    syn::Fields::Unit => {}
                }
            }
            Item::Enum(x) => {
                let d = docs(&x.attrs);
                if !d.is_empty() {
                    let _ = writeln!(out, "{d}\n");
                }
                let _ = writeln!(out, "_Defined in `{rel}`._ One of:\n");
                for v in &x.variants {
                    let vs = serde_attrs(&v.attrs);
                    if vs.skip {
                        continue;
                    }
                    let vname = vs.rename.clone().unwrap_or_else(|| v.ident.to_string());
                    let vd = docs(&v.attrs);
                    match &v.fields {
                        syn::Fields::Unit => {
                            let _ = writeln!(out, "- `{vname}`: {vd}");
                        }
                        syn::Fields::Unnamed(u) => {
                            let parts: Vec<String> =
                                u.unnamed.iter().map(|f| render_type(&f.ty, &s, &def.file, &mut refs)).collect();
                            let _ = writeln!(out, "- `{vname}(...)`, holding {}: {vd}", parts.join(", "));
                        }
                        syn::Fields::Named(n) => {
                            let _ = writeln!(out, "- `{vname}(...)` with fields: {vd}\n");
                            let mut t = String::new();
                            fields_table(&mut t, n, &vname, false, &s, &def.file, &mut refs);
                            for line in t.lines() {
                                let _ = writeln!(out, "  {line}");
                            }
                        }
                    }
                }
                out.push('\n');
            }
        }
        for r in refs {
            if !done.contains(&r.0) {
                queue.push_back(r);
            }
        }
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}
