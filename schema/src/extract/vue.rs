//! The `<script>` and `<script setup>` blocks of a Vue single-file component, with their byte
//! offsets in the file, so positions in a block map back to the `.vue` file.
//!
//! A small splitter, not an HTML parser: it skips HTML comments, finds each top-level
//! `<script …>` start tag, reads its `lang` attribute and takes the text up to `</script>`.
//! The `<template>` block is skipped whole, so a `<script` inside it is not mistaken for one.

/// One script block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScriptBlock<'s> {
    /// The block's text (between the start tag's `>` and `</script>`).
    pub(crate) text: &'s str,
    /// Byte offset of `text` in the file.
    pub(crate) offset: usize,
    /// The `lang` attribute (`ts`, `tsx`, `js`, `jsx`); `js` when absent.
    pub(crate) lang: String,
}

/// Why a `.vue` file could not be split: (byte offset, message).
pub(crate) type SplitError = (usize, String);

/// The script blocks of `sfc`, in file order.
pub(crate) fn script_blocks(sfc: &str) -> Result<Vec<ScriptBlock<'_>>, SplitError> {
    let lower = sfc.to_ascii_lowercase();
    let mut blocks = Vec::new();
    let mut at = 0;
    while let Some(rel) = lower[at..].find('<') {
        let tag_start = at + rel;
        let rest = &lower[tag_start..];
        if rest.starts_with("<!--") {
            at = match rest.find("-->") {
                Some(end) => tag_start + end + 3,
                None => return Err((tag_start, "unterminated HTML comment".to_owned())),
            };
            continue;
        }
        let Some(name) = top_level_tag(rest) else {
            at = tag_start + 1;
            continue;
        };
        let Some(head_len) = rest.find('>') else {
            return Err((tag_start, format!("unterminated <{name}> start tag")));
        };
        let head = &sfc[tag_start..tag_start + head_len];
        let body_start = tag_start + head_len + 1;
        let close = format!("</{name}");
        let body_end = if head.ends_with('/') {
            body_start - 1 // `<template/>`: no body
        } else if name == "template" {
            // Templates nest `<template v-if>`: the block ends at the last `</template>`
            // before the next top-level block, or the last one in the file.
            match lower[body_start..].rfind(&close) {
                Some(end) => body_start + end,
                None => return Err((tag_start, "no </template> for this <template>".to_owned())),
            }
        } else {
            match lower[body_start..].find(&close) {
                Some(end) => body_start + end,
                None => return Err((tag_start, format!("no </{name}> for this <{name}>"))),
            }
        };
        if name == "script" {
            blocks.push(ScriptBlock {
                text: &sfc[body_start..body_end],
                offset: body_start,
                lang: attribute(head, "lang").unwrap_or_else(|| "js".to_owned()),
            });
        }
        at = match lower[body_end..].find('>') {
            Some(end) => body_end + end + 1,
            None => sfc.len(),
        };
    }
    Ok(blocks)
}

/// `script`, `template` or `style` when `rest` opens one of those tags.
fn top_level_tag(rest: &str) -> Option<&'static str> {
    ["script", "template", "style"].into_iter().find(|name| {
        rest[1..].starts_with(name)
            && rest[1 + name.len()..].starts_with(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/')
    })
}

/// The value of `name="…"`, `name='…'` or `name=…` in a start tag.
fn attribute(head: &str, name: &str) -> Option<String> {
    let lower = head.to_ascii_lowercase();
    let mut at = 0;
    while let Some(rel) = lower[at..].find(name) {
        let start = at + rel;
        at = start + name.len();
        let before_ok = lower[..start].ends_with(|c: char| c.is_ascii_whitespace());
        let after = lower[at..].trim_start();
        if !before_ok || !after.starts_with('=') {
            continue;
        }
        let value = after[1..].trim_start();
        let value = match value.chars().next() {
            Some(q @ ('"' | '\'')) => value[1..].split(q).next().unwrap_or(""),
            _ => value.split(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/').next().unwrap_or(""),
        };
        return Some(value.to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn finds_both_script_blocks_with_their_offsets_and_langs() {
        let sfc = "<template>\n  <div><template v-if=\"x\">a</template></div>\n</template>\n\n<script lang=\"ts\">\nexport default {}\n</script>\n<!-- <script>nope</script> -->\n<script setup lang='tsx'>\nconst a = 1\n</script>\n<style scoped>.a{}</style>\n";
        let blocks = script_blocks(sfc).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].lang, "ts");
        assert_eq!(blocks[0].text, "\nexport default {}\n");
        assert_eq!(&sfc[blocks[0].offset..blocks[0].offset + 7], "\nexport");
        assert_eq!(blocks[1].lang, "tsx");
        assert_eq!(blocks[1].text, "\nconst a = 1\n");
    }

    #[test]
    fn a_script_without_lang_is_javascript_and_an_unclosed_one_is_an_error() {
        let blocks = script_blocks("<script>\nlet x\n</script>").unwrap();
        assert_eq!(blocks[0].lang, "js");
        let err = script_blocks("<template></template>\n<script setup>\nlet x\n").unwrap_err();
        assert_eq!(err.0, 22);
    }
}
