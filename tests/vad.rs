//! Silero VAD and the turn detector on synthesized audio (needs the provisioned
//! Silero model and ONNX Runtime: `tingshuo models fetch`).

mod asr_support;

use asr_support::*;
use tingshuo::vad::{EndpointConfig, EndpointEvent, SileroModel, TurnDetector, VadRate};

fn model() -> SileroModel {
    SileroModel::load(&paths()).unwrap_or_else(|e| panic!("{e}"))
}

/// Max probability over all chunks of `audio`.
fn probs(model: &SileroModel, rate: u32, audio: &[f32]) -> Vec<f32> {
    let mut vad = model.new_vad(VadRate::from_hz(rate).unwrap()).unwrap();
    let mut out = Vec::new();
    for frame in audio.chunks((rate / 50) as usize) {
        vad.push(frame, |p| out.push(p)).unwrap();
    }
    out
}

fn events(model: &SileroModel, rate: u32, audio: &[f32]) -> Vec<EndpointEvent> {
    let mut det = TurnDetector::new(model, rate, EndpointConfig::default()).unwrap();
    audio
        .chunks((rate / 50) as usize)
        .filter_map(|f| det.push_frame(f).unwrap())
        .collect()
}

fn with_silence(rate: u32, speech: &[f32]) -> Vec<f32> {
    let pad = vec![0.0; rate as usize];
    [pad.as_slice(), speech, pad.as_slice(), pad.as_slice()].concat()
}

#[test]
fn silence_and_line_noise_are_not_speech() {
    let m = model();
    for rate in [8000, 16000] {
        let silence = vec![0.0f32; rate as usize * 3];
        let p = probs(&m, rate, &silence);
        assert_eq!(p.len(), 3000 / 32);
        assert!(p.iter().all(|&p| p < 0.1), "silence at {rate}: {p:?}");
        for (name, noise) in [
            ("white", white_noise(rate, 3.0, -45.0, 7)),
            ("pink", pink_noise(rate, 3.0, -45.0, 9)),
            ("dtmf", dtmf(rate, "13579#0*")),
        ] {
            let ev = events(&m, rate, &noise);
            assert!(ev.is_empty(), "{name} noise at {rate} Hz gave {ev:?}");
        }
    }
}

#[test]
fn synthesized_speech_is_detected_with_start_and_end() {
    let m = model();
    for rate in [8000, 16000] {
        let speech = espeak("您好，我想查询一下上个月的账单。", rate);
        let audio = with_silence(rate, &speech);
        let p = probs(&m, rate, &audio);
        let voiced = p.iter().filter(|&&p| p >= 0.5).count();
        assert!(
            voiced * 32 >= 1000,
            "only {voiced} voiced chunks at {rate} Hz: {p:?}"
        );
        let ev = events(&m, rate, &audio);
        let start = ev.iter().find_map(|e| match e {
            EndpointEvent::SpeechStart { start_ms } => Some(*start_ms),
            _ => None,
        });
        let start = start.unwrap_or_else(|| panic!("no SpeechStart at {rate}: {ev:?}"));
        assert!((900..=1300).contains(&start), "start at {start} ms");
        assert!(
            matches!(ev.last(), Some(EndpointEvent::SpeechEnd { speech_end_ms, .. }) if *speech_end_ms > 2500),
            "{ev:?}"
        );
    }
}

#[test]
fn turn_audio_covers_the_speech_with_preroll() {
    let m = model();
    let rate = 16000;
    let speech = espeak("好的，明天下午三点可以。", rate);
    let audio = with_silence(rate, &speech);
    let mut det = TurnDetector::new(&m, rate, EndpointConfig::default()).unwrap();
    let mut got = None;
    for f in audio.chunks(320) {
        if let Some(EndpointEvent::SpeechEnd { .. }) = det.push_frame(f).unwrap() {
            got = Some(det.turn_audio().to_vec());
        }
    }
    let turn = got.expect("turn ended");
    let secs = turn.len() as f32 / rate as f32;
    let speech_secs = speech.len() as f32 / rate as f32;
    assert!(
        secs > speech_secs - 0.3 && secs < speech_secs + 0.8,
        "turn {secs:.2} s vs speech {speech_secs:.2} s"
    );
    // It holds the loud part, not just silence.
    assert!(rms(&turn) > db_to_amp(-30.0));
}

#[test]
fn a_turn_ended_early_and_reopened_is_one_turn_from_its_first_start() {
    let m = model();
    let rate = 16000;
    let first = espeak("满意", rate);
    let rest = espeak("续费的办法我记下了。", rate);
    let gap = vec![0.0f32; rate as usize * 3 / 10];
    let audio = [
        vec![0.0f32; rate as usize].as_slice(),
        &first,
        &gap,
        &rest,
        vec![0.0f32; rate as usize * 2].as_slice(),
    ]
    .concat();
    let mut det = TurnDetector::new(&m, rate, EndpointConfig::default()).unwrap();
    let (mut ended_early, mut reopened, mut whole) = (false, false, None);
    for f in audio.chunks(320) {
        let ev = det.push_frame(f).unwrap();
        if !ended_early && matches!(ev, Some(EndpointEvent::TentativeEnd { .. })) {
            // The call loop took 满意 as the whole answer.
            det.end_turn_early();
            ended_early = true;
            continue;
        }
        if ended_early && !reopened && matches!(ev, Some(EndpointEvent::SpeechStart { .. })) {
            // The caller went on: the rest belongs to the same turn.
            assert!(det.reopen_held());
            reopened = true;
        }
        if let Some(EndpointEvent::SpeechEnd { .. }) = ev {
            whole = Some(det.turn_audio().to_vec());
        }
    }
    assert!(ended_early && reopened);
    let whole = whole.expect("the reopened turn ended");
    let secs = whole.len() as f32 / rate as f32;
    let spoken = (first.len() + gap.len() + rest.len()) as f32 / rate as f32;
    assert!(
        secs > spoken - 0.2 && secs < spoken + 0.8,
        "turn {secs:.2} s for {spoken:.2} s of speech and pause"
    );
    // Its first part is the first word, not the pre-roll of the second start.
    assert!(!det.reopen_held(), "the held turn is taken once");
}

/// Stream time (ms) of the end of the last 10 ms window louder than `dbfs`.
fn last_loud_ms(rate: u32, audio: &[f32], dbfs: f32) -> u64 {
    let win = (rate / 100) as usize;
    let last = audio
        .chunks(win)
        .rposition(|w| rms(w) > db_to_amp(dbfs))
        .expect("some sound");
    (last as u64 + 1) * 10
}

fn speech_end(rate: u32, audio: &[f32]) -> u64 {
    let m = model();
    let ev = events(&m, rate, audio);
    match ev.last() {
        Some(EndpointEvent::SpeechEnd { speech_end_ms, .. }) => *speech_end_ms,
        other => panic!("turn did not end: {other:?} in {ev:?}"),
    }
}

#[test]
fn a_clean_end_of_speech_is_found_without_waiting_for_silero_to_decay() {
    let rate = 16000;
    let speech = espeak("好的，没有别的问题了。", rate);
    let audio = with_silence(rate, &speech);
    let sound_end = last_loud_ms(rate, &audio, -50.0);
    let end = speech_end(rate, &audio);
    // Silero alone lands a chunk or more after the sound stops (4832 vs 4790 ms on
    // espeak-ng 1.51); the deep-quiet rule ends the speech within one chunk of it.
    assert!(
        end <= sound_end + 32,
        "speech end {end} ms, sound stopped at {sound_end} ms"
    );
    assert!(
        end + 64 >= sound_end,
        "cut before the sound stopped: {end} vs {sound_end}"
    );
}

/// In steady line noise Silero trails the end of speech by 100-230 ms (its
/// probability stays at 0.99 on chunks already at the floor); the noise-floor rule
/// ends the speech where the clean recording's sound stops, and never splits the
/// sentence into two turns.
#[test]
fn in_steady_noise_the_end_is_found_at_the_noise_floor() {
    let m = model();
    for rate in [8000, 16000] {
        for text in ["好的，没有别的问题了。", "满意"] {
            let speech = espeak(text, rate);
            let clean = with_silence(rate, &speech);
            let sound_end = last_loud_ms(rate, &clean, -50.0);
            for db in [-40.0, -35.0, -30.0] {
                let secs = clean.len() as f32 / rate as f32 + 0.1;
                let noise = white_noise(rate, secs, db, 3);
                let noisy: Vec<f32> = clean.iter().zip(&noise).map(|(s, n)| s + n).collect();
                let ev = events(&m, rate, &noisy);
                let ends: Vec<_> = ev
                    .iter()
                    .filter_map(|e| match e {
                        EndpointEvent::SpeechEnd { speech_end_ms, .. } => Some(*speech_end_ms),
                        _ => None,
                    })
                    .collect();
                let [end] = ends[..] else {
                    panic!("{text:?} at {rate} Hz in {db} dB noise: one turn expected, {ev:?}")
                };
                // Speech decaying below the noise is masked by it: the end may come a
                // little before the clean sound's -50 dBFS edge, never long after.
                assert!(
                    end <= sound_end + 64 && end + 160 >= sound_end,
                    "{text:?} at {rate} Hz in {db} dB noise: speech end {end} ms, sound stopped at {sound_end} ms"
                );
            }
        }
    }
}

/// A phone that sends sound only while its user talks (digital silence between
/// utterances, the noise only around the words): the chunks at the edges of the
/// sound are part noise, part silence and must not pull the noise floor down. They
/// did: the floor came out 4-5 dB under the noise, the noise-floor rule never fired
/// and Silero's trail (120-200 ms on the bench's noisy turns) was kept.
#[test]
fn noise_that_comes_and_goes_with_the_words_still_sets_the_floor() {
    let m = model();
    for rate in [8000, 16000] {
        let words = espeak("没有别的问题了", rate);
        let noise_db = -35.0;
        // Noise from 0.3 s before the words to 0.2 s after them, silence around.
        let mut utterance = vec![0.0f32; rate as usize * 3 / 10];
        utterance.extend(&words);
        utterance.extend(vec![0.0f32; rate as usize / 5]);
        let noise = white_noise(
            rate,
            utterance.len() as f32 / rate as f32 + 0.1,
            noise_db,
            11,
        );
        let gap = vec![0.0f32; rate as usize];
        let mut det = TurnDetector::new(&m, rate, EndpointConfig::default()).unwrap();
        for n in 0..3 {
            // Each utterance starts at a different phase of the 32 ms chunks.
            let offset = n * rate as usize / 100;
            let audio: Vec<f32> = [&gap[offset..], &gap[..offset]]
                .concat()
                .into_iter()
                .chain(utterance.iter().zip(&noise).map(|(s, n)| s + n))
                .collect();
            for f in audio.chunks((rate / 50) as usize) {
                det.push_frame(f).unwrap();
            }
        }
        for f in gap.chunks((rate / 50) as usize) {
            det.push_frame(f).unwrap();
        }
        let floor = det
            .noise_floor_db()
            .expect("a floor after three utterances");
        assert!(
            (floor - noise_db).abs() <= 1.5,
            "at {rate} Hz the floor is {floor:.1} dBFS for noise at {noise_db} dBFS"
        );
    }
}
