//! Mandarin text front-end: text → clauses of Baker symbol ids for the acoustic model.
//!
//! Pipeline per input: normalise (numbers, dates, phones, e-mail, symbols) → split into
//! clauses at punctuation → segment words with jieba → phrase-aware pinyin → tone sandhi →
//! initial + final/tone symbols with prosody marks → `sil … sil eos` ids.
//!
//! The symbol inventory and pinyin → (initial, final) split come from `baker_mapper.json`
//! (the table the voice was trained with), so a different Baker-style voice only needs its
//! own mapper file.

pub mod normalize;
pub mod numbers;
pub mod pinyin;
pub mod sandhi;
pub mod syllable;

use std::collections::HashMap;
use std::path::Path;

use jieba_rs::Jieba;
use serde::Deserialize;

use crate::models::ModelPaths;
use crate::tts::TtsError;
use normalize::{is_hanzi, Piece};
use pinyin::PinyinDict;
use sandhi::Unit;

/// How word boundaries are marked for the acoustic model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Prosody {
    /// `#1` between prosodic words, `#0` between syllables inside a word — the marks the
    /// Baker training labels use.
    #[default]
    WordBoundaries,
    /// `#0` everywhere, as TensorFlowTTS's inference processor does.
    Flat,
}

/// What ends a clause, which sets the pause after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClauseEnd {
    /// 、 — a short list pause.
    List,
    /// ，；： and line breaks.
    Comma,
    /// 。！？
    Sentence,
    /// End of the input.
    End,
    /// A long first clause cut at a word boundary so audio starts sooner: no added pause.
    Join,
}

/// One clause ready for the acoustic model.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    /// Normalised text of the clause (without its punctuation).
    pub text: String,
    /// Pinyin after sandhi, one entry per syllable (`yin2`).
    pub pinyin: Vec<String>,
    /// Baker symbols, `sil … sil eos`.
    pub phones: Vec<String>,
    /// Symbol ids for `input_ids`.
    pub ids: Vec<i32>,
    pub end: ClauseEnd,
}

/// The Baker symbol table (`baker_mapper.json`).
pub struct SymbolTable {
    ids: HashMap<String, i32>,
    split: HashMap<String, (String, String)>,
}

#[derive(Deserialize)]
struct MapperFile {
    symbol_to_id: HashMap<String, i32>,
    pinyin_dict: HashMap<String, (String, String)>,
}

impl SymbolTable {
    pub fn load(path: &Path) -> Result<Self, TtsError> {
        let raw = std::fs::read_to_string(path).map_err(|e| TtsError::Data {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let m: MapperFile = serde_json::from_str(&raw).map_err(|e| TtsError::Data {
            path: path.to_path_buf(),
            message: format!("not a Baker mapper (symbol_to_id + pinyin_dict): {e}"),
        })?;
        for needed in ["sil", "eos", "#0", "#1"] {
            if !m.symbol_to_id.contains_key(needed) {
                return Err(TtsError::Data {
                    path: path.to_path_buf(),
                    message: format!("symbol {needed:?} is missing from symbol_to_id"),
                });
            }
        }
        Ok(Self {
            ids: m.symbol_to_id,
            split: m.pinyin_dict,
        })
    }

    pub fn id(&self, symbol: &str) -> Option<i32> {
        self.ids.get(symbol).copied()
    }

    /// Initial and toneless final of a syllable (`zhong` → `zh`, `ong`; `yu` → `^`, `v`).
    pub fn split(&self, base: &str) -> Option<(&str, &str)> {
        let base = match base {
            // 嗯/呣 read as syllabic nasals: the corpus labels them `en`.
            "n" | "ng" | "m" | "hm" | "hng" => "en",
            b => b,
        };
        self.split.get(base).map(|(i, f)| (i.as_str(), f.as_str()))
    }
}

/// Particles that attach to the word before them (no prosodic boundary).
const CLITICS: &str = "的了吗呢吧啊呀嘛着过们地得么哦儿";

/// The front-end: segmenter, pinyin tables and symbol table.
pub struct Frontend {
    jieba: Jieba,
    dict: PinyinDict,
    symbols: SymbolTable,
    pub prosody: Prosody,
}

impl Frontend {
    /// Loads the pinyin tables and the Baker symbol table from the model cache.
    pub fn load(paths: &ModelPaths) -> Result<Self, TtsError> {
        let phrases = paths.require("pinyin phrase table", &paths.pinyin_phrases)?;
        let chars = paths.require("pinyin character table", &paths.pinyin_chars)?;
        let mapper = paths.require("TTS symbol table (baker_mapper)", &paths.baker_mapper)?;
        Self::from_files(phrases, chars, mapper)
    }

    pub fn from_files(phrases: &Path, chars: &Path, mapper: &Path) -> Result<Self, TtsError> {
        Ok(Self {
            jieba: Jieba::new(),
            dict: PinyinDict::load(phrases, chars)?,
            symbols: SymbolTable::load(mapper)?,
            prosody: Prosody::default(),
        })
    }

    /// Text → clauses with symbol ids. Clauses with nothing readable are dropped.
    pub fn analyze(&self, text: &str) -> Vec<Clause> {
        self.analyze_with(text, None)
    }

    /// Like [`Frontend::analyze`], but a first clause longer than `first_chunk` syllables
    /// is cut at a word boundary into a short head (at most `first_chunk` syllables,
    /// at least 4) and the rest, joined without a pause: the head renders in a fraction
    /// of the time, so a streamed answer starts sooner.
    pub fn analyze_with(&self, text: &str, first_chunk: Option<usize>) -> Vec<Clause> {
        let mut out = Vec::new();
        for (i, (pieces, end)) in split_clauses(normalize::normalize(text))
            .into_iter()
            .enumerate()
        {
            let Some((words, text)) = self.words(&pieces) else {
                continue;
            };
            let limit = if i == 0 && out.is_empty() {
                first_chunk
            } else {
                None
            };
            match limit.and_then(|max| head_cut(&words, max)) {
                Some(cut) => {
                    let head_text: String = words[..cut]
                        .iter()
                        .flatten()
                        .filter_map(|(c, _)| *c)
                        .collect();
                    let tail_text = text
                        .trim()
                        .strip_prefix(head_text.as_str())
                        .unwrap_or(text.trim())
                        .to_string();
                    out.extend(self.emit(&words[..cut], &head_text, ClauseEnd::Join));
                    out.extend(self.emit(&words[cut..], &tail_text, end));
                }
                None => out.extend(self.emit(&words, &text, end)),
            }
        }
        out
    }

    /// Space-separated pinyin of the whole text after sandhi (for tests and `--debug`).
    pub fn pinyin(&self, text: &str) -> String {
        self.analyze(text)
            .iter()
            .flat_map(|c| c.pinyin.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Words (after sandhi) and normalised text of one clause.
    fn words(&self, pieces: &[Piece]) -> Option<(Vec<Vec<Unit>>, String)> {
        let mut words: Vec<Vec<Unit>> = Vec::new();
        let mut text = String::new();
        for piece in pieces {
            text.push_str(piece.text());
            match piece {
                Piece::Said(r) => {
                    let units: Vec<Unit> = r.syls.iter().map(|s| (None, s.clone())).collect();
                    // Keep the digits' characters for 一-sandhi context.
                    let chars: Vec<char> = r.text.chars().collect();
                    let units = if chars.len() == units.len() {
                        chars
                            .into_iter()
                            .map(Some)
                            .zip(units.into_iter().map(|u| u.1))
                            .collect()
                    } else {
                        units
                    };
                    if !units.is_empty() {
                        words.push(units);
                    }
                }
                Piece::Text(t) => {
                    for tok in self.jieba.cut(t, true) {
                        let prev = t[..tok.byte_start].chars().next_back();
                        let next = t[tok.byte_end..].chars().next();
                        let units: Vec<Unit> = self
                            .dict
                            .word(tok.word, prev, next)
                            .into_iter()
                            .map(|(c, s)| (Some(c), s))
                            .collect();
                        if units.is_empty() {
                            continue;
                        }
                        let clitic = tok.word.chars().count() == 1
                            && tok.word.chars().all(|c| CLITICS.contains(c));
                        match words.last_mut() {
                            Some(last) if clitic => last.extend(units),
                            _ => words.push(units),
                        }
                    }
                }
            }
        }
        if words.is_empty() {
            return None;
        }
        sandhi::apply(&mut words);
        Some((words, text))
    }

    /// Symbols and ids for a run of words.
    fn emit(&self, words: &[Vec<Unit>], text: &str, end: ClauseEnd) -> Option<Clause> {
        let mut phones = vec!["sil".to_string()];
        let mut pinyin = Vec::new();
        for (wi, word) in words.iter().enumerate() {
            for (si, (ch, syl)) in word.iter().enumerate() {
                let Some((ini, fin)) = self.symbols.split(&syl.base) else {
                    tracing::warn!(syllable = %syl, "no Baker symbols for this syllable; skipped");
                    continue;
                };
                let erhua = si > 0 && *ch == Some('儿') && syl.base == "er" && syl.tone == 5;
                if phones.len() > 1 && !erhua {
                    let boundary = if si == 0 && wi > 0 && self.prosody == Prosody::WordBoundaries {
                        "#1"
                    } else {
                        "#0"
                    };
                    phones.push(boundary.to_string());
                }
                if !erhua {
                    phones.push(ini.to_string());
                }
                phones.push(format!("{fin}{}", syl.tone));
                pinyin.push(syl.to_string());
            }
        }
        if pinyin.is_empty() {
            return None;
        }
        phones.push("sil".to_string());
        phones.push("eos".to_string());
        let ids = phones
            .iter()
            .filter_map(|p| {
                let id = self.symbols.id(p);
                if id.is_none() {
                    tracing::warn!(symbol = %p, "symbol not in the voice's table; skipped");
                }
                id
            })
            .collect();
        Some(Clause {
            text: text.trim().to_string(),
            pinyin,
            phones,
            ids,
            end,
        })
    }
}

/// Where to cut a long first clause: the last word boundary with at most `max`
/// syllables before it, at least 4 before and 4 after. None when no cut is needed.
fn head_cut(words: &[Vec<Unit>], max: usize) -> Option<usize> {
    let total: usize = words.iter().map(Vec::len).sum();
    if total <= max {
        return None;
    }
    let mut before = 0;
    let mut best = None;
    for (i, w) in words.iter().enumerate() {
        if before >= 4 && before <= max && total - before >= 4 {
            best = Some(i);
        }
        before += w.len();
    }
    best
}

/// Splits normalised pieces into clauses at punctuation.
fn split_clauses(pieces: Vec<Piece>) -> Vec<(Vec<Piece>, ClauseEnd)> {
    let mut out = Vec::new();
    let mut cur: Vec<Piece> = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Said(_) => cur.push(piece),
            Piece::Text(t) => {
                let mut buf = String::new();
                for c in t.chars() {
                    let end = match c {
                        '、' => Some(ClauseEnd::List),
                        '，' | ',' | '；' | ';' | '：' | ':' | '\n' | '…' => {
                            Some(ClauseEnd::Comma)
                        }
                        '。' | '！' | '？' | '!' | '?' | '.' => Some(ClauseEnd::Sentence),
                        _ => None,
                    };
                    match end {
                        Some(e) => {
                            if !buf.is_empty() {
                                cur.push(Piece::Text(std::mem::take(&mut buf)));
                            }
                            if has_readable(&cur) {
                                out.push((std::mem::take(&mut cur), e));
                            } else {
                                cur.clear();
                                // Upgrade the previous clause's pause (e.g. "。」" or "？！").
                                if let Some(last) = out.last_mut() {
                                    if e == ClauseEnd::Sentence {
                                        last.1 = e;
                                    }
                                }
                            }
                        }
                        None => buf.push(c),
                    }
                }
                if !buf.is_empty() {
                    cur.push(Piece::Text(buf));
                }
            }
        }
    }
    if has_readable(&cur) {
        out.push((cur, ClauseEnd::End));
    }
    out
}

fn has_readable(pieces: &[Piece]) -> bool {
    pieces.iter().any(|p| match p {
        Piece::Said(r) => !r.syls.is_empty(),
        Piece::Text(t) => t.chars().any(is_hanzi),
    })
}
