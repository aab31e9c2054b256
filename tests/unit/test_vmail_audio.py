"""The recording in a voicemail e-mail: found, typed for the browser, its length read from the
WAV header, bounded; any bytes at all give a Recording or None, never an exception."""
from pathlib import Path

from hypothesis import given, settings, strategies as S

from pbx_textback.core.pbx.vmail_audio import Recording, recording

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "voicemail-email"


def test_asterisk_and_freeswitch_attachments_are_found_as_browser_playable_wav():
    for name in ("asterisk-default-attach.eml", "freeswitch-default-attach.eml"):
        rec = recording((FIX / name).read_bytes())
        assert rec is not None and rec.content_type == "audio/wav", name
        assert rec.audio[:4] == b"RIFF" and rec.duration_s == 0.25 and not rec.too_big


def test_a_mail_without_attachment_has_no_recording_and_a_big_one_is_not_kept():
    assert recording((FIX / "asterisk-pbxskip-noattach-nocidname.eml").read_bytes()) is None
    big = recording((FIX / "asterisk-default-attach.eml").read_bytes(), max_bytes=1000)
    assert big is not None and big.too_big and big.audio == b""


@settings(max_examples=300, deadline=None)
@given(S.binary(max_size=4000))
def test_any_bytes_give_a_recording_or_none(data):
    got = recording(data)
    assert got is None or isinstance(got, Recording)


@settings(max_examples=100, deadline=None)
@given(S.binary(max_size=600))
def test_a_damaged_attachment_never_raises(noise):
    raw = (FIX / "asterisk-default-attach.eml").read_bytes()
    cut = raw.index(b"UklGR")
    got = recording(raw[:cut] + noise + raw[cut + len(noise):])
    assert got is None or isinstance(got, Recording)
