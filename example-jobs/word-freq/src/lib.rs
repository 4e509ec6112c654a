//! Counts words: `{"text": "...", "top": 10}` → `{"total_words": N, "unique_words": M, "top": [["word", count], ...]}`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use wasmjob_sdk::JobError;

#[derive(Deserialize)]
struct Input {
    text: String,
    #[serde(default = "default_top")]
    top: usize,
}

fn default_top() -> usize {
    10
}

#[derive(Serialize)]
struct Output {
    total_words: u64,
    unique_words: usize,
    /// The most frequent words, most frequent first, ties alphabetically.
    top: Vec<(String, u64)>,
}

#[wasmjob_sdk::job]
fn word_freq(Input { text, top }: Input) -> Result<Output, JobError> {
    let mut counts: HashMap<String, u64> = HashMap::new();
    let mut total_words = 0u64;
    let mut reported = 0u8;
    // Words are runs of alphanumeric characters, compared lowercased.
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() {
            continue;
        }
        total_words += 1;
        *counts.entry(word.to_lowercase()).or_default() += 1;
        // Progress in steps of 10%, by how far into the text this word ends.
        let end = word.as_ptr() as usize - text.as_ptr() as usize + word.len();
        let percent = (end * 100 / text.len()) as u8;
        if percent < 100 && percent >= reported + 10 {
            reported = percent - percent % 10;
            wasmjob_sdk::progress(reported, &format!("{total_words} words counted"));
        }
    }
    let unique_words = counts.len();
    let mut ranked: Vec<(String, u64)> = counts.into_iter().collect();
    ranked.sort_unstable_by(|(wa, ca), (wb, cb)| cb.cmp(ca).then_with(|| wa.cmp(wb)));
    ranked.truncate(top);
    wasmjob_sdk::progress(
        100,
        &format!("{total_words} words, {unique_words} distinct"),
    );
    Ok(Output {
        total_words,
        unique_words,
        top: ranked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lowercased_words_and_breaks_ties_alphabetically() {
        let text = "The cat; the DOG, the end. Dog-cat 42 é é".to_owned();
        let out = word_freq(Input { text, top: 4 }).unwrap();
        assert_eq!(out.total_words, 11);
        assert_eq!(out.unique_words, 6);
        let top: Vec<(&str, u64)> = out.top.iter().map(|(w, c)| (w.as_str(), *c)).collect();
        assert_eq!(top, [("the", 3), ("cat", 2), ("dog", 2), ("é", 2)]);
    }

    #[test]
    fn empty_text() {
        let out = word_freq(Input {
            text: " ,; ".to_owned(),
            top: 10,
        })
        .unwrap();
        assert_eq!(
            (out.total_words, out.unique_words, out.top.len()),
            (0, 0, 0)
        );
    }
}
