//! Front-end tests that need the provisioned pinyin tables and Baker symbol table
//! (`tingshuo models fetch`): polyphones in context, tone sandhi, symbol sequences.
//! They fail, naming the fix, when the cache is missing.

use std::sync::LazyLock;

use tingshuo::models::ModelPaths;
use tingshuo::tts::frontend::{ClauseEnd, Frontend, Prosody};

static FRONTEND: LazyLock<Frontend> = LazyLock::new(|| {
    let paths = ModelPaths::default_cache();
    Frontend::load(&paths).unwrap_or_else(|e| {
        panic!("the TTS front-end tests need the pinyin tables and baker_mapper.json: {e}")
    })
});

fn py(text: &str) -> String {
    FRONTEND.pinyin(text)
}

/// (text, expected surface pinyin after sandhi). Polyphones decided by phrase context
/// or by the rule table, each checked in a short call-centre style context.
const POLYPHONES: &[(&str, &str)] = &[
    ("银行", "yin2 hang2"),
    ("行长", "hang2 zhang3"),
    ("不行", "bu4 xing2"),
    ("行业", "hang2 ye4"),
    ("重新开始", "chong2 xin1 kai1 shi3"),
    ("很重要", "hen3 zhong4 yao4"),
    ("重复", "chong2 fu4"),
    ("还款", "huan2 kuan3"),
    ("还钱", "huan2 qian2"),
    ("我还没吃饭", "wo3 hai2 mei2 chi1 fan4"),
    ("还是", "hai2 shi4"),
    ("长大", "zhang3 da4"),
    ("长城", "chang2 cheng2"),
    ("为了", "wei4 le5"),
    ("成为", "cheng2 wei2"),
    ("了解", "liao2 jie3"),
    ("走了", "zou3 le5"),
    ("觉得", "jue2 de5"),
    ("得到", "de2 dao4"),
    ("慢慢地走", "man4 man4 de5 zou3"),
    ("地址", "di4 zhi3"),
    ("首都", "shou3 du1"),
    ("都是", "dou1 shi4"),
    ("发现", "fa1 xian4"),
    ("理发", "li3 fa4"),
    ("睡着", "shui4 zhao2"),
    ("等着", "deng3 zhe5"),
    ("种子", "zhong3 zi5"),
    ("种树", "zhong4 shu4"),
    ("没有", "mei2 you3"),
    ("和平", "he2 ping2"),
    ("暖和", "nuan3 huo5"),
    ("调整", "tiao2 zheng3"),
    ("调查", "diao4 cha2"),
    ("空调", "kong1 tiao2"),
    ("便宜", "pian2 yi5"),
    ("好奇", "hao4 qi2"),
    ("快乐", "kuai4 le4"),
    ("音乐", "yin1 yue4"),
    ("应该", "ying1 gai1"),
];

#[test]
fn polyphones_in_context() {
    let mut wrong = Vec::new();
    for (text, want) in POLYPHONES {
        let got = py(text);
        if got != *want {
            wrong.push(format!("{text}: got {got:?}, want {want:?}"));
        }
    }
    assert!(POLYPHONES.len() >= 30);
    assert!(wrong.is_empty(), "wrong readings:\n{}", wrong.join("\n"));
}

#[test]
fn tone_sandhi_as_the_corpus_labels_it() {
    // Third tone before third tone rises.
    assert_eq!(py("你好"), "ni2 hao3");
    assert_eq!(py("处理"), "chu2 li3");
    assert_eq!(py("只有"), "zhi2 you3");
    // 不 before a fourth tone is bú, otherwise bù.
    assert_eq!(py("不是"), "bu2 shi4");
    assert_eq!(py("不用"), "bu2 yong4");
    assert_eq!(py("不好"), "bu4 hao3");
    assert_eq!(py("能不能"), "neng2 bu5 neng2");
    // 一: yí before a fourth tone, yì before others, yī as a number.
    assert_eq!(py("一下"), "yi2 xia4");
    assert_eq!(py("一天"), "yi4 tian1");
    assert_eq!(py("第一"), "di4 yi1");
    assert_eq!(py("周一"), "zhou1 yi1");
    // Numbers keep yī inside and take sandhi at the front.
    assert_eq!(py("100"), "yi4 bai3");
    assert_eq!(py("11"), "shi2 yi1");
    // Phone digits never change tone.
    assert_eq!(py("尾号5555"), "wei3 hao4 wu3 wu3 wu3 wu3");
}

#[test]
fn normalised_text_reaches_pinyin() {
    assert_eq!(py("凌晨0点到4点"), "ling2 chen2 ling2 dian3 dao4 si4 dian3");
    assert_eq!(py("<10分钟"), "xiao3 yu2 shi2 fen1 zhong1");
    assert_eq!(py("2个"), "liang3 ge4");
    assert_eq!(py("1天"), "yi4 tian1");
    assert_eq!(py("1次"), "yi2 ci4");
    assert_eq!(py("1:00"), "yi1 dian3");
    assert_eq!(py("a@b.cn"), "ei1 ai4 te4 bi4 dian3 xi1 en1");
}

#[test]
fn symbol_sequence_matches_the_baker_layout() {
    let clauses = FRONTEND.analyze("中文");
    assert_eq!(clauses.len(), 1);
    let c = &clauses[0];
    assert_eq!(c.phones.join(" "), "sil zh ong1 #0 ^ uen2 sil eos");
    // baker_mapper.json: sil = 1, eos = 218, #0 = 2.
    assert_eq!(c.ids.first(), Some(&1));
    assert_eq!(c.ids.last(), Some(&218));
    assert_eq!(c.ids.len(), c.phones.len());
    // Words are separated by #1, syllables inside a word by #0.
    let c = &FRONTEND.analyze("我们明天去银行")[0];
    assert!(c.phones.contains(&"#1".to_string()), "{:?}", c.phones);
    // Erhua: 儿 joins the syllable before it.
    let c = &FRONTEND.analyze("一点儿")[0];
    assert!(
        c.phones.join(" ").ends_with("d ian3 er5 sil eos"),
        "{:?}",
        c.phones
    );
}

#[test]
fn flat_prosody_uses_only_hash0() {
    let paths = ModelPaths::default_cache();
    let mut fe = Frontend::load(&paths).unwrap_or_else(|e| panic!("{e}"));
    fe.prosody = Prosody::Flat;
    let c = &fe.analyze("我们明天去银行")[0];
    assert!(!c.phones.contains(&"#1".to_string()));
    assert!(c.phones.contains(&"#0".to_string()));
}

#[test]
fn clauses_split_at_punctuation_with_pause_kinds() {
    let clauses = FRONTEND.analyze("您好，这里是客服中心。请问有什么可以帮您？");
    let texts: Vec<&str> = clauses.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(texts, ["您好", "这里是客服中心", "请问有什么可以帮您"]);
    let ends: Vec<ClauseEnd> = clauses.iter().map(|c| c.end).collect();
    assert_eq!(
        ends,
        [ClauseEnd::Comma, ClauseEnd::Sentence, ClauseEnd::Sentence]
    );
    // Only punctuation or symbols: nothing to say.
    assert!(FRONTEND.analyze("……！？").is_empty());
}

#[test]
fn every_corpus_sentence_maps_to_known_symbols() {
    let corpus = include_str!("data/corpus.txt");
    let mut n = 0;
    for line in corpus
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let clauses = FRONTEND.analyze(line);
        assert!(!clauses.is_empty(), "{line}");
        for c in &clauses {
            assert_eq!(
                c.ids.len(),
                c.phones.len(),
                "unknown symbol in {line}: {:?}",
                c.phones
            );
            // Every hanzi got a syllable.
            let hanzi = c
                .text
                .chars()
                .filter(|ch| ('\u{4e00}'..='\u{9fff}').contains(ch))
                .count();
            assert!(
                c.pinyin.len() >= hanzi,
                "{line}: {} syllables for {hanzi} hanzi",
                c.pinyin.len()
            );
        }
        n += 1;
    }
    assert!(n >= 40, "corpus has {n} sentences");
}

#[test]
fn every_latin_letter_is_sayable() {
    let c = &FRONTEND.analyze("ABCDEFGHIJKLMNOPQRSTUVWXYZ")[0];
    // 18 one-syllable names, 6 two-syllable (F H L M R S), 2 three-syllable (W X).
    assert_eq!(c.pinyin.len(), 36, "{:?}", c.pinyin);
    assert_eq!(c.ids.len(), c.phones.len());
    assert_eq!(py("WiFi"), "wai1 fei1");
}

#[test]
fn long_first_clause_is_cut_for_a_fast_start() {
    let text = "您预约的时间是下午两点三十分，请准时到达。";
    let whole = FRONTEND.analyze(text);
    let cut = FRONTEND.analyze_with(text, Some(8));
    assert_eq!(whole.len(), 2);
    assert_eq!(cut.len(), 3);
    assert_eq!(cut[0].end, ClauseEnd::Join);
    assert!(
        (4..=8).contains(&cut[0].pinyin.len()),
        "{:?}",
        cut[0].pinyin
    );
    // Same syllables (sandhi decided on the whole clause), same text.
    let syl =
        |cs: &[tingshuo::tts::Clause]| cs.iter().flat_map(|c| c.pinyin.clone()).collect::<Vec<_>>();
    assert_eq!(syl(&cut), syl(&whole));
    assert_eq!(format!("{}{}", cut[0].text, cut[1].text), whole[0].text);
    // Short first clauses stay whole.
    assert_eq!(FRONTEND.analyze_with("好的，再见。", Some(8)).len(), 2);
}
