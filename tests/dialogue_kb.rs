//! Knowledge-base retrieval accuracy on hand-written paraphrases (at least 3 per
//! Q&A entry, none copying the entry's wording) for the three scripts, plus
//! unrelated questions that must get the holding answer. Prints top-1 accuracy,
//! holding-answer rate and latency; asserts a floor so regressions show.

mod shared_dir;

use std::time::Instant;

use tingshuo::dialogue::demo::{INBOUND, OUTBOUND};
use tingshuo::dialogue::{KnowledgeBase, Script};

/// The user's shared example script, when `../shared` is beside the clone.
fn maintenance() -> Option<Script> {
    let path = shared_dir::shared_file("call-scripts/maintenance-notice.md")?;
    Some(Script::load(&path).expect("the shared example script loads"))
}

/// (entry index, paraphrase)
const MAINT_PARAS: &[(usize, &str)] = &[
    (0, "共享文件和聊天那块是一起停还是分开停"),
    (0, "文件共享跟即时消息会不会同一时间都用不了"),
    (0, "两个模块的中断时间会重叠吗"),
    (0, "消息模块维护的时候文件共享还能用吗"),
    (1, "你们备份都包括哪些东西"),
    (1, "要是备份坏了数据还能恢复回来吗"),
    (1, "备份覆盖什么范围的数据"),
    (1, "备份失败的话能回退吗"),
    (2, "维护那天晚上你们谁在值班"),
    (2, "出了紧急情况找谁帮忙"),
    (2, "技术人员是怎么安排值守的"),
    (3, "变更的详细内容能不能先发给我们看看"),
    (3, "维护的操作细则可以事先看到吗"),
    (3, "技术变更清单提前能拿到吗"),
    (4, "维护完了会给我们一份结果报告吗"),
    (4, "事后有没有影响范围的总结"),
    (4, "结束以后能提供维护结论吗"),
    (5, "要是进度临时有调整你们怎么通知我"),
    (5, "维护时间临时变了会告诉我们吗"),
    (5, "中途有变动的话通过什么方式告知"),
    (6, "维护过程的日志我们能自己存档吗"),
    (6, "我们有没有权限查看操作记录"),
    (6, "所有操作日志能不能归档留存"),
];

const OUT_PARAS: &[(usize, &str)] = &[
    (0, "装宽带要不要额外花钱"),
    (0, "上门安装收费吗"),
    (0, "师傅来装需要我付钱吗"),
    (1, "约好的时间可以调整吗"),
    (1, "那天我有事能换个日子吗"),
    (1, "安装时间能不能往后改一改"),
    (2, "师傅来之前会先打个电话吧"),
    (2, "安装师傅出发前联系我吗"),
    (2, "到时候师傅会提前通知我吗"),
    (3, "装好以后网速不够怎么办"),
    (3, "要是速度达不到三百兆呢"),
    (3, "网速不达标你们管不管"),
    (4, "我得准备啥证件"),
    (4, "安装那天要带身份证吗"),
    (4, "需要提供什么材料证明身份"),
    (5, "要在墙上打洞吗"),
    (5, "安装会不会在墙上钻孔"),
    (5, "需要打孔走线吗"),
];

const IN_PARAS: &[(usize, &str)] = &[
    (0, "家里网突然没了咋办"),
    (0, "宽带断了连不上怎么处理"),
    (0, "突然上不了网了"),
    (0, "网络断开了怎么弄"),
    (1, "网速慢得要命是怎么回事"),
    (1, "为什么我家网这么卡"),
    (1, "网速太慢了什么原因"),
    (2, "这个月账单在哪儿查"),
    (2, "我想看看这个月交了多少钱"),
    (2, "怎么查本月的费用"),
    (3, "宽带快到期了怎么交钱续上"),
    (3, "续费去哪里办"),
    (3, "到期以后怎么续"),
    (4, "我要搬家了宽带能跟着搬吗"),
    (4, "换了住址能移机吗"),
    (4, "搬到新房子宽带怎么办"),
    (5, "无线密码怎么改"),
    (5, "wifi密码想换一个怎么弄"),
    (5, "家里无线的密码在哪里修改"),
    (6, "我不想用了怎么销户"),
    (6, "报停宽带要带什么"),
    (6, "注销宽带需要什么手续"),
];

/// Questions no entry answers: these must fall below the threshold.
const UNRELATED: &[&str] = &[
    "你们公司股票代码是多少",
    "今天晚上吃什么好",
    "你们老板叫什么名字",
    "明天会下雨吗",
    "附近有没有好吃的餐厅",
    "你们招不招实习生",
];

struct Score {
    n: usize,
    top1: usize,
    answered_right: usize,
    micros: u128,
}

fn run(name: &str, script: &Script, paras: &[(usize, &str)]) -> Score {
    let kb = KnowledgeBase::new(&script.kb);
    let mut s = Score {
        n: 0,
        top1: 0,
        answered_right: 0,
        micros: 0,
    };
    for (want, q) in paras {
        let t = Instant::now();
        let best = kb.best(q);
        let ans = kb.answer(q).map(|x| x.0.index);
        s.micros += t.elapsed().as_micros();
        s.n += 1;
        if std::env::var("KB_DEBUG").is_ok() {
            eprintln!(
                "conf {:.3} ok={} {q}",
                best.map(|b| b.confidence).unwrap_or(0.0),
                best.map(|b| b.index) == Some(*want)
            );
        }
        if best.map(|b| b.index) == Some(*want) {
            s.top1 += 1;
        } else {
            eprintln!(
                "{name}: \"{q}\" → {:?}, want {want}",
                best.map(|b| (b.index, b.confidence))
            );
        }
        if ans == Some(*want) {
            s.answered_right += 1;
        }
    }
    // Every entry has at least three paraphrases.
    for i in 0..script.kb.len() {
        assert!(
            paras.iter().filter(|p| p.0 == i).count() >= 3,
            "{name}: entry {i} needs 3 paraphrases"
        );
    }
    println!(
        "KB {name}: top-1 {}/{} ({:.1} %), answered correctly above threshold {}/{}, mean {:.0} µs per query",
        s.top1,
        s.n,
        100.0 * s.top1 as f64 / s.n as f64,
        s.answered_right,
        s.n,
        s.micros as f64 / s.n as f64
    );
    s
}

#[test]
fn kb_paraphrase_accuracy() {
    let m = maintenance();
    let o = Script::parse(OUTBOUND, "outbound").unwrap();
    let i = Script::parse(INBOUND, "inbound").unwrap();
    let mut scores = vec![run("outbound", &o, OUT_PARAS), run("inbound", &i, IN_PARAS)];
    let mut scripts = vec![&o, &i];
    if let Some(m) = &m {
        scores.push(run("maintenance", m, MAINT_PARAS));
        scripts.push(m);
    }
    let n: usize = scores.iter().map(|s| s.n).sum();
    let top1: usize = scores.iter().map(|s| s.top1).sum();
    let right: usize = scores.iter().map(|s| s.answered_right).sum();
    let mut held = 0;
    for script in &scripts {
        let kb = KnowledgeBase::new(&script.kb);
        for q in UNRELATED {
            if std::env::var("KB_DEBUG").is_ok() {
                eprintln!(
                    "unrelated conf {:.3} {q}",
                    kb.best(q).map(|b| b.confidence).unwrap_or(0.0)
                );
            }
            if kb.answer(q).is_none() {
                held += 1;
            } else {
                eprintln!("unrelated \"{q}\" answered from {}", script.source);
            }
        }
    }
    let total_unrelated = UNRELATED.len() * scripts.len();
    println!(
        "KB overall: top-1 {top1}/{n} ({:.1} %), answered correctly {right}/{n} ({:.1} %), unrelated questions held {held}/{total_unrelated}",
        100.0 * top1 as f64 / n as f64,
        100.0 * right as f64 / n as f64
    );
    assert!(top1 * 100 >= n * 85, "top-1 accuracy fell below 85 %");
    assert!(
        right * 100 >= n * 75,
        "answer rate above threshold fell below 75 %"
    );
    assert!(
        held * 100 >= total_unrelated * 80,
        "too many unrelated questions answered"
    );
}
