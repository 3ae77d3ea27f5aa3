//! The computer's own microphone and speaker (through `cpal`), for `tingshuo talk`.
//!
//! Device callbacks run on the sound server's real-time thread, so they only move
//! samples through lock-free single-producer/single-consumer rings (`rtrb`): the
//! microphone callback downmixes to mono and pushes, the speaker callback pops (silence
//! when the ring is empty) and copies to every channel. Everything else (resampling to
//! and from 8 kHz, the call) happens on the consumer's side. Devices run at their own
//! default rate (typically 44.1 or 48 kHz); the caller resamples in 20 ms frames, which
//! needs a rate that is a multiple of 50 Hz.

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

/// Ring capacity in seconds of audio at the device rate: room for scheduling hiccups.
const RING_SECS: usize = 2;

/// Why the local audio devices could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(
        "no audio input device: no usable default microphone ({host}). `tingshuo talk` \
         needs a microphone and a speaker: connect them or select a default capture device \
         (`arecord -l` lists ALSA devices; with PulseAudio/PipeWire use `pactl set-default-source`), \
         or try the script in text mode with `tingshuo chat --script PATH`"
    )]
    NoInput { host: String },
    #[error(
        "no audio output device: no usable default speaker ({host}). `tingshuo talk` \
         needs a microphone and a speaker: connect them or select a default playback device \
         (`aplay -l` lists ALSA devices; with PulseAudio/PipeWire use `pactl set-default-sink`), \
         or try the script in text mode with `tingshuo chat --script PATH`"
    )]
    NoOutput { host: String },
    #[error(
        "cannot open the {what} for `tingshuo talk`: {message}. Check that a {what} is connected \
         and set as the default device, that no other program holds it exclusively and that your \
         user may use audio devices (group `audio`), or try the script in text mode with \
         `tingshuo chat --script PATH`"
    )]
    Open { what: &'static str, message: String },
    #[error(
        "the {what} runs at {rate} Hz, which cannot be cut into 20 ms frames; set the device to \
         44100 or 48000 Hz in the sound settings"
    )]
    Rate { what: &'static str, rate: u32 },
    #[error(
        "the {what} uses the sample format {format}, which tingshuo does not handle; set the \
         device to 16-bit or float samples in the sound settings"
    )]
    Format { what: &'static str, format: String },
}

/// The open default microphone and speaker. Dropping it stops both streams (the
/// streams stay on the thread that opened them; their samples travel in [`DeviceIo`]).
pub struct LocalAudio {
    _input: cpal::Stream,
    _output: cpal::Stream,
    pub input_rate: u32,
    pub output_rate: u32,
}

/// The sample rings of the open devices; `Send`, for the thread that moves audio.
pub struct DeviceIo {
    /// Mono microphone samples at [`LocalAudio::input_rate`].
    pub mic: rtrb::Consumer<f32>,
    /// Mono speaker samples at [`LocalAudio::output_rate`].
    pub speaker: rtrb::Producer<f32>,
}

impl LocalAudio {
    /// Opens the default input and output devices and starts both streams.
    pub fn open_default() -> Result<(Self, DeviceIo), DeviceError> {
        let host = cpal::default_host();
        let host_name = format!("audio host {:?}", host.id());
        let input = host.default_input_device().ok_or(DeviceError::NoInput {
            host: host_name.clone(),
        })?;
        let output = host.default_output_device().ok_or(DeviceError::NoOutput {
            host: host_name.clone(),
        })?;
        let open = |what: &'static str| {
            move |e: cpal::Error| DeviceError::Open {
                what,
                message: e.to_string().trim_end_matches('.').to_string(),
            }
        };
        // ALSA always names a "default" device; that it cannot be opened is how a
        // machine without a sound card shows.
        let missing = |e: cpal::Error, none: DeviceError, what: &'static str| {
            if e.kind() == cpal::ErrorKind::DeviceNotAvailable {
                none
            } else {
                open(what)(e)
            }
        };
        let in_cfg = input.default_input_config().map_err(|e| {
            let none = DeviceError::NoInput {
                host: host_name.clone(),
            };
            missing(e, none, "microphone")
        })?;
        let out_cfg = output.default_output_config().map_err(|e| {
            let none = DeviceError::NoOutput {
                host: host_name.clone(),
            };
            missing(e, none, "speaker")
        })?;
        let input_rate = in_cfg.sample_rate();
        let output_rate = out_cfg.sample_rate();
        for (what, rate) in [("microphone", input_rate), ("speaker", output_rate)] {
            if rate == 0 || rate % 50 != 0 {
                return Err(DeviceError::Rate { what, rate });
            }
        }
        let (mic_tx, mic) = rtrb::RingBuffer::<f32>::new(input_rate as usize * RING_SECS);
        let (speaker, spk_rx) = rtrb::RingBuffer::<f32>::new(output_rate as usize * RING_SECS);

        let in_channels = usize::from(in_cfg.channels()).max(1);
        let in_stream = match in_cfg.sample_format() {
            cpal::SampleFormat::F32 => {
                build_input::<f32>(&input, in_cfg.config(), in_channels, mic_tx)
            }
            cpal::SampleFormat::I16 => {
                build_input::<i16>(&input, in_cfg.config(), in_channels, mic_tx)
            }
            other => {
                return Err(DeviceError::Format {
                    what: "microphone",
                    format: other.to_string(),
                })
            }
        }
        .map_err(open("microphone"))?;
        let out_channels = usize::from(out_cfg.channels()).max(1);
        let out_stream = match out_cfg.sample_format() {
            cpal::SampleFormat::F32 => {
                build_output::<f32>(&output, out_cfg.config(), out_channels, spk_rx)
            }
            cpal::SampleFormat::I16 => {
                build_output::<i16>(&output, out_cfg.config(), out_channels, spk_rx)
            }
            other => {
                return Err(DeviceError::Format {
                    what: "speaker",
                    format: other.to_string(),
                })
            }
        }
        .map_err(open("speaker"))?;
        in_stream.play().map_err(open("microphone"))?;
        out_stream.play().map_err(open("speaker"))?;
        Ok((
            Self {
                _input: in_stream,
                _output: out_stream,
                input_rate,
                output_rate,
            },
            DeviceIo { mic, speaker },
        ))
    }
}

/// A sample type the devices may use, converted to and from f32 in [-1, 1].
trait Pcm: cpal::SizedSample + Send + 'static {
    fn to_f32(self) -> f32;
    fn from_f32(v: f32) -> Self;
}

impl Pcm for f32 {
    fn to_f32(self) -> f32 {
        self
    }
    fn from_f32(v: f32) -> Self {
        v
    }
}

impl Pcm for i16 {
    fn to_f32(self) -> f32 {
        f32::from(self) / 32768.0
    }
    fn from_f32(v: f32) -> Self {
        super::f32_to_i16(v)
    }
}

fn build_input<T: Pcm>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    channels: usize,
    mut ring: rtrb::Producer<f32>,
) -> Result<cpal::Stream, cpal::Error> {
    device.build_input_stream::<T, _, _>(
        config,
        move |data: &[T], _| {
            for frame in data.chunks(channels) {
                let mono = frame.iter().map(|s| s.to_f32()).sum::<f32>() / channels as f32;
                // A full ring means the reader stalled: dropping is better than blocking
                // the sound server's thread.
                let _ = ring.push(mono);
            }
        },
        |e| tracing::warn!(error = %e, "microphone stream error"),
        None,
    )
}

fn build_output<T: Pcm>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    channels: usize,
    mut ring: rtrb::Consumer<f32>,
) -> Result<cpal::Stream, cpal::Error> {
    device.build_output_stream::<T, _, _>(
        config,
        move |data: &mut [T], _| {
            for frame in data.chunks_mut(channels) {
                let v = T::from_f32(ring.pop().unwrap_or(0.0));
                frame.fill(v);
            }
        },
        |e| tracing::warn!(error = %e, "speaker stream error"),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_problem_and_the_fix() {
        let e = DeviceError::NoInput {
            host: "audio host Alsa".into(),
        }
        .to_string();
        assert!(
            e.contains("no audio input device") && e.contains("tingshuo chat"),
            "{e}"
        );
        let e = DeviceError::Rate {
            what: "speaker",
            rate: 44123,
        }
        .to_string();
        assert!(e.contains("44123 Hz") && e.contains("48000"), "{e}");
    }

    #[test]
    fn i16_samples_round_trip_through_f32() {
        for s in [i16::MIN + 1, -1000, 0, 1000, i16::MAX] {
            let back = i16::from_f32(s.to_f32());
            assert!((i32::from(back) - i32::from(s)).abs() <= 1, "{s} → {back}");
        }
    }
}
