//! Benchmark: `contract extract` over a generated SPA of 2,000 source files holding 500
//! operations (`.tsx` components with `gql` templates interpolating fragments imported from
//! 100 fragment modules, `.vue` single-file components, `.graphql` files), about 6 MB of
//! source. Target: under 1 s on 2 cores (release), reading the files included.
//!
//! Run with `cargo bench -p banyan-schema --bench extract`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use banyan_schema::{ExtractOptions, extract};

const FILES: usize = 2_000;
const FRAGMENT_FILES: usize = 100;
const OPERATIONS: usize = 500;

/// Filler a real component has around its operation: types, hooks, handlers, JSX.
fn component_body(out: &mut String, name: &str) {
    let _ = write!(
        out,
        r#"
type {name}Props = {{ id: string; onSelect?: (id: string) => void; filter?: string }};

interface {name}Row {{
  id: string;
  label: string;
  count: number;
}}

export function {name}({{ id, onSelect, filter }}: {name}Props) {{
  const [open, setOpen] = useState(false);
  const [rows, setRows] = useState<{name}Row[]>([]);
  const visible = useMemo(
    () => rows.filter((row) => !filter || row.label.toLowerCase().includes(filter.toLowerCase())),
    [rows, filter],
  );
  useEffect(() => {{
    let cancelled = false;
    fetchRows(id).then((next: {name}Row[]) => {{
      if (!cancelled) setRows(next.sort((a, b) => a.count - b.count));
    }});
    return () => {{
      cancelled = true;
    }};
  }}, [id]);
  const onClick = useCallback(
    (row: {name}Row) => {{
      setOpen(!open);
      onSelect?.(row.id);
    }},
    [open, onSelect],
  );
  return (
    <section className="{name}">
      <header>
        <h2>{{`${{visible.length}} of ${{rows.length}}`}}</h2>
        <button type="button" onClick={{() => setOpen(!open)}}>
          {{open ? "Close" : "Open"}}
        </button>
      </header>
      {{open && (
        <ul>
          {{visible.map((row) => (
            <li key={{row.id}} onClick={{() => onClick(row)}}>
              <span>{{row.label}}</span> <small>{{row.count}}</small>
            </li>
          ))}}
        </ul>
      )}}
    </section>
  );
}}
"#
    );
}

fn operation(k: usize) -> String {
    let fragment = k % FRAGMENT_FILES;
    format!(
        "query Op{k}($id: ID!, $first: Int = 20) {{\n  node(id: $id) {{\n    id\n    ... on User {{\n      ...Frag{fragment}\n      friends(first: $first) {{ edges {{ node {{ id name }} }} }}\n    }}\n  }}\n}}"
    )
}

/// Writes the SPA under `root`: 100 fragment modules and 1,900 components, every
/// 19th-in-5 of which holds one operation (500), as `.tsx` (most), `.vue` or `.graphql`.
fn write_spa(root: &Path) -> std::io::Result<()> {
    let fragments = root.join("src/fragments");
    std::fs::create_dir_all(&fragments)?;
    for j in 0..FRAGMENT_FILES {
        let text = format!(
            "import {{ gql }} from \"@apollo/client\";\n\nexport const FRAG_{j} = gql`\n  fragment Frag{j} on User {{\n    id\n    name\n    email\n    avatar{j}: avatarUrl(size: {j})\n  }}\n`;\n"
        );
        std::fs::write(fragments.join(format!("frag{j}.ts")), text)?;
    }
    let mut ops = 0;
    for i in 0..FILES - FRAGMENT_FILES {
        let name = format!("C{i}");
        let dir = root.join("src/components").join(&name);
        std::fs::create_dir_all(&dir)?;
        let has_op = i % 19 < 5 && ops < OPERATIONS;
        let mut text = String::new();
        let (file, text) = match (i % 10, has_op) {
            (2, true) => {
                ops += 1;
                (format!("{name}.graphql"), format!("# Component {i}.\n{}\n", operation(ops - 1)))
            }
            (0 | 1, _) => {
                let script = if has_op {
                    ops += 1;
                    let fragment = (ops - 1) % FRAGMENT_FILES;
                    format!(
                        "import gql from \"graphql-tag\";\nimport {{ FRAG_{fragment} }} from \"../../fragments/frag{fragment}\";\n\nconst {{ result }} = useQuery(gql`\n  {}\n  ${{FRAG_{fragment}}}\n`);\n",
                        operation(ops - 1).replace('\n', "\n  ")
                    )
                } else {
                    "const props = defineProps<{ id: string }>();\n".to_owned()
                };
                let mut filler = String::new();
                component_body(&mut filler, &name);
                (
                    format!("{name}.vue"),
                    format!(
                        "<template>\n  <div class=\"{name}\">{{{{ result }}}}</div>\n</template>\n\n<script setup lang=\"ts\">\n{script}\n</script>\n\n<script lang=\"tsx\">\n{filler}\n</script>\n\n<style scoped>\n.{name} {{ display: flex; }}\n</style>\n"
                    ),
                )
            }
            _ => {
                text.push_str("import { gql, useQuery } from \"@apollo/client\";\nimport { useCallback, useEffect, useMemo, useState } from \"react\";\n");
                if has_op {
                    ops += 1;
                    let fragment = (ops - 1) % FRAGMENT_FILES;
                    let _ = write!(
                        text,
                        "import {{ FRAG_{fragment} }} from \"../../fragments/frag{fragment}\";\n\nexport const QUERY_{i} = gql`\n  {}\n  ${{FRAG_{fragment}}}\n`;\n",
                        operation(ops - 1).replace('\n', "\n  ")
                    );
                }
                component_body(&mut text, &name);
                (format!("{name}.tsx"), text)
            }
        };
        std::fs::write(dir.join(file), text)?;
    }
    assert_eq!(ops, OPERATIONS, "the generator places every operation");
    Ok(())
}

fn spa() -> &'static PathBuf {
    static SPA: OnceLock<PathBuf> = OnceLock::new();
    SPA.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("banyan-extract-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        write_spa(&root).expect("the generated SPA is written");
        root
    })
}

fn main() {
    let root = spa();
    let start = Instant::now();
    let extraction = extract(root, ExtractOptions::default()).expect("the generated SPA extracts");
    let elapsed = start.elapsed();
    assert_eq!(extraction.operations, OPERATIONS);
    assert_eq!(extraction.sources, FILES);
    eprintln!(
        "extract: {} source files, {} operations, {} contract files: {:.1} ms",
        extraction.sources,
        extraction.operations,
        extraction.files.len(),
        elapsed.as_secs_f64() * 1000.0
    );
    divan::main();
    let _ = std::fs::remove_dir_all(root);
}

/// Reading, parsing and resolving the whole tree: what `banyan contract extract --check` does
/// before comparing.
#[divan::bench(sample_count = 10)]
fn extract_2000_files_500_operations() -> usize {
    extract(spa(), ExtractOptions::default()).map(|e| e.operations).unwrap_or(0)
}
