//! Synthetic schemas and contracts for the benchmark (and a test that keeps them valid).
//!
//! `generate(n_types, n_ops)` builds an old schema of about `n_types` types (objects,
//! interfaces, unions, enums, input objects), a new schema with a few hundred changes of
//! mixed kinds, and `n_ops` operations valid against the old schema (fields through fragments,
//! inline fragments on unions, variables of input types, enum literals).

#![allow(dead_code)]

use std::fmt::Write as _;

use banyan_schema::ContractSource;

/// Deterministic pseudo-random numbers (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

#[derive(Clone)]
struct Arg {
    name: String,
    ty: String,
    default: Option<String>,
}

#[derive(Clone)]
struct Field {
    name: String,
    /// Full type, e.g. `[T12!]`.
    ty: String,
    /// Named type.
    named: String,
    args: Vec<Arg>,
    deprecated: bool,
    description: Option<String>,
}

#[derive(Clone)]
enum Kind {
    Object { implements: Vec<usize> },
    Interface,
    Union { members: Vec<usize> },
    Enum { values: Vec<String> },
    Input,
}

#[derive(Clone)]
struct Ty {
    name: String,
    kind: Kind,
    fields: Vec<Field>,
    description: Option<String>,
}

#[derive(Clone)]
struct Model {
    types: Vec<Ty>,
    enums: Vec<usize>,
    inputs: Vec<usize>,
    interfaces: Vec<usize>,
    objects: Vec<usize>,
    unions: Vec<usize>,
    query: Vec<Field>,
}

const SCALARS: &[&str] = &["String", "Int", "Boolean", "ID", "Float"];

fn field(name: String, ty: &str, named: &str) -> Field {
    Field {
        name,
        ty: ty.to_owned(),
        named: named.to_owned(),
        args: Vec::new(),
        deprecated: false,
        description: None,
    }
}

fn build(n_types: usize, rng: &mut Rng) -> Model {
    let n_enums = n_types * 6 / 100;
    let n_inputs = n_types * 10 / 100;
    let n_interfaces = n_types * 4 / 100;
    let n_unions = n_types * 6 / 100;
    let n_objects = n_types - n_enums - n_inputs - n_interfaces - n_unions;
    let mut m = Model {
        types: Vec::new(),
        enums: Vec::new(),
        inputs: Vec::new(),
        interfaces: Vec::new(),
        objects: Vec::new(),
        unions: Vec::new(),
        query: Vec::new(),
    };
    for i in 0..n_enums {
        let values = (0..4 + rng.below(5)).map(|v| format!("V{v}")).collect();
        m.enums.push(m.types.len());
        m.types.push(Ty {
            name: format!("E{i}"),
            kind: Kind::Enum { values },
            fields: Vec::new(),
            description: None,
        });
    }
    for i in 0..n_inputs {
        let mut fields = Vec::new();
        for f in 0..3 + rng.below(4) {
            let (ty, named) = match rng.below(4) {
                0 if !m.enums.is_empty() => {
                    let e = &m.types[m.enums[rng.below(m.enums.len())]].name;
                    (e.clone(), e.clone())
                }
                1 if !m.inputs.is_empty() => {
                    let t = &m.types[m.inputs[rng.below(m.inputs.len())]].name;
                    (t.clone(), t.clone())
                }
                _ => {
                    let s = SCALARS[rng.below(SCALARS.len())];
                    (s.to_owned(), s.to_owned())
                }
            };
            fields.push(field(format!("in{f}"), &ty, &named));
        }
        m.inputs.push(m.types.len());
        m.types.push(Ty { name: format!("In{i}"), kind: Kind::Input, fields, description: None });
    }
    for i in 0..n_interfaces {
        let fields = vec![field("id".into(), "ID!", "ID"), field(format!("if{i}"), "String", "String")];
        m.interfaces.push(m.types.len());
        m.types.push(Ty {
            name: format!("I{i}"),
            kind: Kind::Interface,
            fields,
            description: Some(format!("Interface {i}.")),
        });
    }
    let first_object = m.types.len();
    for i in 0..n_objects {
        m.objects.push(first_object + i);
    }
    let first_union = first_object + n_objects;
    for i in 0..n_unions {
        m.unions.push(first_union + i);
    }
    for i in 0..n_objects {
        let mut fields = vec![field("id".into(), "ID!", "ID")];
        let mut implements = Vec::new();
        if rng.chance(20) && !m.interfaces.is_empty() {
            let itf = m.interfaces[rng.below(m.interfaces.len())];
            implements.push(itf);
            for f in &m.types[itf].fields {
                if f.name != "id" {
                    fields.push(f.clone());
                }
            }
        }
        for f in 0..6 + rng.below(5) {
            let name = format!("f{f}");
            let mut fd = match rng.below(10) {
                0..=3 => {
                    let s = SCALARS[rng.below(SCALARS.len())];
                    let ty = if rng.chance(30) { format!("{s}!") } else { s.to_owned() };
                    field(name, &ty, s)
                }
                4 | 5 => {
                    let e = m.types[m.enums[rng.below(m.enums.len())]].name.clone();
                    field(name, &e, &e)
                }
                6 | 7 => {
                    let t = format!("T{}", rng.below(n_objects));
                    let ty = if rng.chance(50) { format!("[{t}!]") } else { t.clone() };
                    field(name, &ty, &t)
                }
                8 => {
                    let u = format!("U{}", rng.below(n_unions.max(1)));
                    field(name, &format!("[{u}]"), &u)
                }
                _ => {
                    let itf = &m.types[m.interfaces[rng.below(m.interfaces.len())]].name;
                    field(name, itf, itf)
                }
            };
            if rng.chance(30) {
                fd.args.push(Arg { name: "first".into(), ty: "Int".into(), default: Some("10".into()) });
            }
            if rng.chance(15) {
                let input = &m.types[m.inputs[rng.below(m.inputs.len())]].name;
                fd.args.push(Arg { name: "where".into(), ty: input.clone(), default: None });
            }
            if rng.chance(10) {
                let e = &m.types[m.enums[rng.below(m.enums.len())]].name;
                fd.args.push(Arg { name: "mode".into(), ty: e.clone(), default: None });
            }
            fields.push(fd);
        }
        m.types.push(Ty {
            name: format!("T{i}"),
            kind: Kind::Object { implements },
            fields,
            description: if rng.chance(30) { Some(format!("Object {i}.")) } else { None },
        });
    }
    for i in 0..n_unions {
        let mut members: Vec<usize> =
            (0..2 + rng.below(4)).map(|_| m.objects[rng.below(m.objects.len())]).collect();
        members.sort_unstable();
        members.dedup();
        m.types.push(Ty {
            name: format!("U{i}"),
            kind: Kind::Union { members },
            fields: Vec::new(),
            description: None,
        });
    }
    // Query: one root field per object for the first ones, plus unions and inputs.
    for i in 0..n_objects.min(2000) {
        let mut f = field(format!("t{i}"), &format!("T{i}"), &format!("T{i}"));
        f.args.push(Arg { name: "id".into(), ty: "ID!".into(), default: None });
        if i % 3 == 0 {
            let input = &m.types[m.inputs[i % m.inputs.len()]].name;
            f.args.push(Arg { name: "filter".into(), ty: input.clone(), default: None });
        }
        m.query.push(f);
    }
    m
}

/// Renders a model as SDL. `documented`: every type and field without a description of its own
/// gets a short generated one, as documented production schemas have (about twice the bytes).
fn render(m: &Model, documented: bool) -> String {
    let mut out = String::with_capacity(m.types.len() * 200);
    let _ = writeln!(out, "directive @tag(name: String) repeatable on FIELD | INLINE_FRAGMENT\n");
    for t in &m.types {
        if let Some(d) = &t.description {
            let _ = writeln!(out, "\"{d}\"");
        } else if documented {
            let _ = writeln!(out, "\"The {} type of the generated schema.\"", t.name);
        }
        match &t.kind {
            Kind::Enum { values } => {
                let _ = writeln!(out, "enum {} {{\n  {}\n}}\n", t.name, values.join("\n  "));
            }
            Kind::Union { members } => {
                let names: Vec<&str> = members.iter().map(|i| m.types[*i].name.as_str()).collect();
                let _ = writeln!(out, "union {} = {}\n", t.name, names.join(" | "));
            }
            kind => {
                let head = match kind {
                    Kind::Input => format!("input {}", t.name),
                    Kind::Interface => format!("interface {}", t.name),
                    Kind::Object { implements } if !implements.is_empty() => {
                        let names: Vec<&str> = implements.iter().map(|i| m.types[*i].name.as_str()).collect();
                        format!("type {} implements {}", t.name, names.join(" & "))
                    }
                    _ => format!("type {}", t.name),
                };
                let _ = writeln!(out, "{head} {{");
                for f in &t.fields {
                    render_field(&mut out, f, documented.then_some(t.name.as_str()));
                }
                let _ = writeln!(out, "}}\n");
            }
        }
    }
    let _ = writeln!(out, "type Query {{");
    for f in &m.query {
        render_field(&mut out, f, documented.then_some("Query"));
    }
    let _ = writeln!(out, "}}");
    out
}

/// `documented_in`: the type's name, when fields without a description get a generated one.
fn render_field(out: &mut String, f: &Field, documented_in: Option<&str>) {
    if let Some(d) = &f.description {
        let _ = writeln!(out, "  \"{d}\"");
    } else if let Some(ty) = documented_in {
        let _ = writeln!(out, "  \"{} of {ty}.\"", f.name);
    }
    let args = if f.args.is_empty() {
        String::new()
    } else {
        let parts: Vec<String> = f
            .args
            .iter()
            .map(|a| match &a.default {
                Some(d) => format!("{}: {} = {d}", a.name, a.ty),
                None => format!("{}: {}", a.name, a.ty),
            })
            .collect();
        format!("({})", parts.join(", "))
    };
    let dep = if f.deprecated { " @deprecated(reason: \"gone soon\")" } else { "" };
    let _ = writeln!(out, "  {}{args}: {}{dep}", f.name, f.ty);
}

/// Applies about `n` changes of mixed kinds (keeping the schema valid).
fn mutate(m: &Model, n: usize, rng: &mut Rng) -> Model {
    let mut m = m.clone();
    let objects = m.objects.clone();
    for k in 0..n {
        let t = objects[rng.below(objects.len())];
        let implements_something =
            matches!(&m.types[t].kind, Kind::Object { implements } if !implements.is_empty());
        match k % 14 {
            // field removed (not `id`, not an interface field)
            0 if !implements_something && m.types[t].fields.len() > 2 => {
                let i = 1 + rng.below(m.types[t].fields.len() - 1);
                m.types[t].fields.remove(i);
            }
            // field type changed: made non-null (safe) or to another scalar (breaking)
            1 if !implements_something => {
                let ty = &mut m.types[t];
                let i = 1 + rng.below(ty.fields.len() - 1);
                let f = &mut ty.fields[i];
                if SCALARS.contains(&f.named.as_str()) && !f.ty.ends_with('!') {
                    f.ty = format!("{}!", f.ty);
                } else {
                    f.ty = "String".into();
                    f.named = "String".into();
                    f.args.clear();
                }
            }
            2 => {
                let ty = &mut m.types[t];
                let n = ty.fields.len();
                ty.fields.push(field(format!("added{k}_{n}"), "String", "String"));
            }
            3 => {
                let e = m.enums[rng.below(m.enums.len())];
                if let Kind::Enum { values } = &mut m.types[e].kind
                    && values.len() > 2
                {
                    values.pop();
                }
            }
            4 => {
                let e = m.enums[rng.below(m.enums.len())];
                if let Kind::Enum { values } = &mut m.types[e].kind {
                    values.push(format!("NEW{k}"));
                }
            }
            // argument added (required or optional), removed, default changed
            5..=7 if !implements_something => {
                let ty = &mut m.types[t];
                let i = 1 + rng.below(ty.fields.len() - 1);
                let f = &mut ty.fields[i];
                match k % 14 {
                    5 => f.args.push(Arg {
                        name: format!("extra{k}"),
                        ty: if rng.chance(50) { "Int!".into() } else { "Int".into() },
                        default: None,
                    }),
                    6 => {
                        f.args.pop();
                    }
                    _ => {
                        for a in &mut f.args {
                            if a.default.is_some() {
                                a.default = Some("25".into());
                            }
                        }
                    }
                }
            }
            8 => {
                let inp = m.inputs[rng.below(m.inputs.len())];
                let required = rng.chance(50);
                m.types[inp].fields.push(field(
                    format!("new{k}"),
                    if required { "Int!" } else { "Int" },
                    "Int",
                ));
            }
            9 => {
                let u = m.unions[rng.below(m.unions.len())];
                let extra = objects[rng.below(objects.len())];
                if let Kind::Union { members } = &mut m.types[u].kind {
                    if rng.chance(50) && members.len() > 1 {
                        members.pop();
                    } else if !members.contains(&extra) {
                        members.push(extra);
                    }
                }
            }
            10 => {
                let ty = &mut m.types[t];
                let i = rng.below(ty.fields.len());
                ty.fields[i].deprecated = true;
            }
            11 => {
                m.types[t].description = Some(format!("Changed {k}."));
            }
            12 => {
                let ty = &mut m.types[t];
                let i = rng.below(ty.fields.len());
                ty.fields[i].description = Some(format!("Field doc {k}."));
            }
            _ => {
                let inp = m.inputs[rng.below(m.inputs.len())];
                if m.types[inp].fields.len() > 1 {
                    m.types[inp].fields.pop();
                }
            }
        }
    }
    // A few new types.
    for i in 0..20 {
        m.types.push(Ty {
            name: format!("Brand{i}"),
            kind: Kind::Object { implements: Vec::new() },
            fields: vec![field("id".into(), "ID!", "ID")],
            description: None,
        });
    }
    m
}

struct OpGen<'a> {
    m: &'a Model,
    rng: Rng,
    by_name: std::collections::HashMap<&'a str, usize>,
    used: std::collections::BTreeSet<String>,
}

impl OpGen<'_> {
    fn selection(&mut self, ty: usize, depth: usize, out: &mut String, fragments: &[(String, usize)]) {
        let t = &self.m.types[ty];
        match &t.kind {
            Kind::Union { members } => {
                out.push_str("__typename ");
                for mem in members.clone().iter().take(3) {
                    let _ = write!(out, "... on {} {{ id }} ", self.m.types[*mem].name);
                }
                return;
            }
            Kind::Interface => {
                let _ = write!(out, "id {} ", t.fields[1].name);
                return;
            }
            _ => {}
        }
        out.push_str("id ");
        if let Some((name, _)) = fragments.iter().find(|(_, on)| *on == ty) {
            let _ = write!(out, "...{name} ");
            self.used.insert(name.clone());
        }
        let n = t.fields.len();
        for _ in 0..4 {
            let f = &t.fields[self.rng.below(n)];
            if f.name == "id" {
                continue;
            }
            let mut args = String::new();
            for a in &f.args {
                if a.name == "mode" && self.rng.chance(50) {
                    let e = self.by_name[a.ty.as_str()];
                    if let Kind::Enum { values } = &self.m.types[e].kind {
                        let _ = write!(args, "mode: {} ", values[0]);
                    }
                }
                if a.name == "first" && self.rng.chance(50) {
                    args.push_str("first: 5 ");
                }
            }
            let alias = format!("a{}", self.rng.below(1_000_000));
            let head = if args.is_empty() {
                format!("{alias}: {}", f.name)
            } else {
                format!("{alias}: {}({})", f.name, args.trim_end())
            };
            let named = self.by_name.get(f.named.as_str()).copied();
            match named.map(|i| &self.m.types[i].kind) {
                Some(Kind::Object { .. } | Kind::Union { .. } | Kind::Interface) => {
                    if depth >= 2 {
                        continue;
                    }
                    let _ = write!(out, "{head} {{ ");
                    self.selection(named.unwrap_or(0), depth + 1, out, fragments);
                    out.push_str("} ");
                }
                _ => {
                    let _ = write!(out, "{head} ");
                }
            }
        }
    }
}

/// `(old SDL, new SDL, contract files)`.
pub(crate) fn generate(
    n_types: usize,
    n_ops: usize,
    n_changes: usize,
) -> (String, String, Vec<ContractSource>) {
    let (old, new) = models(n_types, n_changes);
    let by_name = old.types.iter().enumerate().map(|(i, t)| (t.name.as_str(), i)).collect();
    let mut g = OpGen { m: &old, rng: Rng(42), by_name, used: Default::default() };
    let mut files = Vec::new();
    // Shared fragments on some objects.
    let mut fragments = Vec::new();
    let mut definitions = Vec::new();
    for i in 0..(n_ops / 5).max(1) {
        let on = old.objects[(i * 7) % old.objects.len()];
        let t = &old.types[on];
        let scalar = t
            .fields
            .iter()
            .find(|f| f.name != "id" && SCALARS.contains(&f.named.as_str()) && f.args.is_empty())
            .map(|f| f.name.clone())
            .unwrap_or_else(|| "id".into());
        definitions.push(format!("fragment Frag{i} on {} {{ id {scalar} }}", t.name));
        fragments.push((format!("Frag{i}"), on));
    }
    for k in 0..n_ops {
        let component = format!("Component{}", k / 5);
        let mut text = String::new();
        let mut vars = Vec::new();
        let mut body = String::new();
        for r in 0..2 + (k % 3) {
            let qi = (k * 13 + r * 101) % old.query.len();
            let qf = &old.query[qi];
            let target = g.by_name[qf.named.as_str()];
            let mut args = format!("id: \"{k}\"");
            if let Some(a) = qf.args.iter().find(|a| a.name == "filter") {
                let v = format!("f{r}");
                vars.push(format!("${v}: {}", a.ty));
                let _ = write!(args, ", filter: ${v}");
            }
            let _ = write!(body, "r{r}: {}({args}) {{ ", qf.name);
            g.selection(target, 0, &mut body, &fragments);
            body.push_str("} ");
        }
        let vars = if vars.is_empty() { String::new() } else { format!("({})", vars.join(", ")) };
        let _ = writeln!(text, "query Op{k}{vars} {{ {body}}}");
        files.push(ContractSource {
            path: format!("frontend-contract/{component}/Op{k}.graphql"),
            component,
            text,
        });
    }
    // Shared fragments that some operation uses.
    let mut shared = String::new();
    for (def, (name, _)) in definitions.iter().zip(&fragments) {
        if g.used.contains(name) {
            let _ = writeln!(shared, "{def}");
        }
    }
    if !shared.is_empty() {
        files.push(ContractSource {
            path: "frontend-contract/shared/fragments.graphql".into(),
            component: "shared".into(),
            text: shared,
        });
    }
    (render(&old, false), render(&new, false), files)
}

/// `(old SDL, new SDL)` as `generate` makes them, each type and field documented (see
/// [`render`]): 5,000 types and 486 changes give two schemas of about 1.7 MB with 477 changes.
pub(crate) fn generate_documented(n_types: usize, n_changes: usize) -> (String, String) {
    let (old, new) = models(n_types, n_changes);
    (render(&old, true), render(&new, true))
}

/// The old and new models `generate` renders.
fn models(n_types: usize, n_changes: usize) -> (Model, Model) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let old = build(n_types, &mut rng);
    let new = mutate(&old, n_changes, &mut rng);
    (old, new)
}

/// The changes between the schemas `generate(n_types, _, n_changes)` returns, counted by kind
/// from the generator's own models (its record of what it changed), not from the SDL: an
/// independent count for the diff to agree with.
pub(crate) fn expected_changes(
    n_types: usize,
    n_changes: usize,
) -> std::collections::BTreeMap<&'static str, usize> {
    let (old, new) = models(n_types, n_changes);
    let mut counts = std::collections::BTreeMap::new();
    let mut count = |kind: &'static str| *counts.entry(kind).or_insert(0) += 1;
    let old_by_name: std::collections::HashMap<&str, &Ty> =
        old.types.iter().map(|t| (t.name.as_str(), t)).collect();
    for n in &new.types {
        let Some(o) = old_by_name.get(n.name.as_str()) else {
            count("TYPE_ADDED");
            continue;
        };
        if o.description != n.description {
            count("DESCRIPTION_CHANGED");
        }
        let input = matches!(n.kind, Kind::Input);
        match (&o.kind, &n.kind) {
            (Kind::Enum { values: ov }, Kind::Enum { values: nv }) => {
                ov.iter().filter(|v| !nv.contains(v)).for_each(|_| count("VALUE_REMOVED_FROM_ENUM"));
                nv.iter().filter(|v| !ov.contains(v)).for_each(|_| count("VALUE_ADDED_TO_ENUM"));
            }
            (Kind::Union { members: om }, Kind::Union { members: nm }) => {
                om.iter().filter(|m| !nm.contains(m)).for_each(|_| count("TYPE_REMOVED_FROM_UNION"));
                nm.iter().filter(|m| !om.contains(m)).for_each(|_| count("TYPE_ADDED_TO_UNION"));
            }
            _ => {}
        }
        for of in &o.fields {
            if !n.fields.iter().any(|f| f.name == of.name) {
                count("FIELD_REMOVED");
            }
        }
        for nf in &n.fields {
            let Some(of) = o.fields.iter().find(|f| f.name == nf.name) else {
                count(match (input, nf.ty.ends_with('!')) {
                    (false, _) => "FIELD_ADDED",
                    (true, true) => "REQUIRED_INPUT_FIELD_ADDED",
                    (true, false) => "OPTIONAL_INPUT_FIELD_ADDED",
                });
                continue;
            };
            if of.ty != nf.ty {
                // Output positions only change here: adding non-null is safe, the rest breaks.
                let safe = !input && nf.ty == format!("{}!", of.ty);
                count(if safe { "FIELD_TYPE_CHANGED_SAFE" } else { "FIELD_CHANGED_KIND" });
            }
            if of.description != nf.description {
                count("DESCRIPTION_CHANGED");
            }
            if !of.deprecated && nf.deprecated {
                count("DEPRECATION_ADDED");
            }
            for oa in &of.args {
                match nf.args.iter().find(|a| a.name == oa.name) {
                    None => count("ARG_REMOVED"),
                    Some(na) if na.default != oa.default => count("ARG_DEFAULT_VALUE_CHANGE"),
                    Some(_) => {}
                }
            }
            for na in nf.args.iter().filter(|a| !of.args.iter().any(|o| o.name == a.name)) {
                let required = na.ty.ends_with('!') && na.default.is_none();
                count(if required { "REQUIRED_ARG_ADDED" } else { "OPTIONAL_ARG_ADDED" });
            }
        }
    }
    counts
}
