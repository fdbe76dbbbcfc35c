"""The serial protocol in pure Python: CRC, COBS, frames, resynchronisation, messages."""

import binascii
import random
import struct
import zlib

import pytest

from tinykd.device import protocol as P

# ------------------------------------------------------------------ CRC


def _crc_bitwise(data: bytes) -> int:
    crc = 0xFFFF
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def test_crc16_ccitt_false_check_values():
    assert P.crc16_ccitt(b"123456789") == 0x29B1  # the catalogue check value
    assert P.crc16_ccitt(b"") == 0xFFFF
    assert P.crc16_ccitt(b"A") == 0xB915
    rng = random.Random(1)
    for n in (1, 2, 17, 255, 1024):
        data = bytes(rng.randrange(256) for _ in range(n))
        # the stdlib's CRC-CCITT (XMODEM polynomial, caller-chosen init) as an oracle
        assert P.crc16_ccitt(data) == binascii.crc_hqx(data, 0xFFFF) == _crc_bitwise(data)


def test_crc_detects_single_bit_flips():
    data = bytes(range(64))
    ref = P.crc16_ccitt(data)
    for i in range(len(data)):
        for bit in range(8):
            flipped = bytearray(data)
            flipped[i] ^= 1 << bit
            assert P.crc16_ccitt(bytes(flipped)) != ref


# ------------------------------------------------------------------ COBS

COBS_VECTORS = [  # from the COBS paper / its common worked examples
    (b"", b"\x01"),
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
    (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255))),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
    (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01"),
    (bytes(range(3, 256)) + b"\x00\x01", b"\xfe" + bytes(range(3, 256)) + b"\x02\x01"),
]


@pytest.mark.parametrize("raw,encoded", COBS_VECTORS)
def test_cobs_vectors(raw, encoded):
    assert P.cobs_encode(raw) == encoded
    assert P.cobs_decode(encoded) == raw


def test_cobs_round_trip_random_and_zero_free():
    rng = random.Random(2)
    for n in list(range(0, 600, 7)) + [253, 254, 255, 508, 509, 1029]:
        for zero_rate in (0.0, 0.1, 0.9):
            data = bytes(0 if rng.random() < zero_rate else rng.randrange(1, 256) for _ in range(n))
            enc = P.cobs_encode(data)
            assert 0 not in enc
            assert len(enc) <= n + n // 254 + 1
            assert P.cobs_decode(enc) == data


@pytest.mark.parametrize("bad", [b"\x00", b"\x05\x11\x22", b"\x03\x11\x00", b"\x02"[:0] + b"\x09"])
def test_cobs_decode_rejects_malformed(bad):
    with pytest.raises(P.ProtocolError):
        P.cobs_decode(bad)


# ------------------------------------------------------------------ frames


def test_frame_layout_is_as_documented():
    wire = P.encode_frame(P.INFER, 0x1234, b"\x01\x00\x02")
    assert wire[0] == 0 and wire[-1] == 0 and 0 not in wire[1:-1]
    body = P.cobs_decode(wire[1:-1])
    assert body[:3] == bytes([P.INFER, 0x34, 0x12])
    assert body[3:-2] == b"\x01\x00\x02"
    assert struct.unpack("<H", body[-2:])[0] == P.crc16_ccitt(body[:-2])


def test_frame_round_trip():
    rng = random.Random(3)
    dec = P.FrameDecoder()
    sent = []
    stream = b""
    for _ in range(200):
        n = rng.choice([0, 1, 10, 253, 254, 255, 784, P.MAX_PAYLOAD])
        payload = bytes(rng.randrange(256) for _ in range(n))
        t, seq = rng.randrange(256), rng.randrange(65536)
        sent.append(P.Frame(t, seq, payload))
        stream += P.encode_frame(t, seq, payload)
    got = []
    pos = 0
    while pos < len(stream):  # feed in random-sized pieces
        k = rng.randrange(1, 300)
        got += dec.feed(stream[pos : pos + k])
        pos += k
    assert got == sent
    assert dec.bad_frames == 0 and dec.pending == 0


def test_encode_rejects_oversized_payload():
    with pytest.raises(P.ProtocolError):
        P.encode_frame(P.INFER, 1, bytes(P.MAX_PAYLOAD + 1))


def test_resync_after_banner_noise_and_corruption():
    rng = random.Random(4)
    f1 = P.encode_frame(P.PONG, 7, b"\x01\x00\x04")
    f2 = P.encode_frame(P.RESULT, 8, bytes(range(20)))
    corrupt = bytearray(P.encode_frame(P.RESULT, 9, b"abcdefgh"))
    corrupt[5] ^= 0x40  # CRC must catch this
    noise = bytes(rng.randrange(256) for _ in range(3000))  # contains zeros: many fake frames
    long_run = bytes(rng.randrange(1, 256) for _ in range(P.MAX_ENCODED + 500))
    stream = b"Booting Mbed OS...\r\n\xff\xfe" + f1 + noise + bytes(corrupt) + long_run + b"\x00" + f2 + b"tail garbage"
    dec = P.FrameDecoder()
    frames = []
    for i in range(0, len(stream), 13):
        frames += dec.feed(stream[i : i + 13])
    assert [(f.type, f.seq) for f in frames if f.seq in (7, 8, 9)] == [(P.PONG, 7), (P.RESULT, 8)]
    assert frames[-1].payload == bytes(range(20))
    assert dec.bad_frames >= 2  # the corrupted frame and the over-long run at least
    assert dec.garbage_bytes > P.MAX_ENCODED
    assert dec.pending == len(b"tail garbage")


def test_truncated_frames_are_dropped_not_misread():
    full = P.encode_frame(P.RESULT, 5, bytes(range(1, 50)))
    dec = P.FrameDecoder()
    for cut in range(2, len(full) - 1):
        assert dec.feed(full[:cut] + b"\x00") == []  # cut short, then a delimiter
    assert dec.bad_frames == len(full) - 3
    # a frame that has not ended yet stays pending and completes later
    assert dec.feed(full[:-1]) == []
    assert dec.pending == len(full) - 2
    assert dec.feed(b"\x00") == [P.Frame(P.RESULT, 5, bytes(range(1, 50)))]
    # a body too short to hold header and CRC
    assert dec.feed(b"\x00" + P.cobs_encode(b"\x01\x02") + b"\x00") == []
    with pytest.raises(P.ProtocolError):
        P.decode_frame(P.cobs_encode(b"\x01\x02\x03"))


# ------------------------------------------------------------------ messages


def _info(**kw):
    base = dict(
        version=1,
        counter_kind=P.COUNTER_INSTRUCTIONS,
        max_payload=1024,
        clock_hz=25_000_000,
        arena_bytes=12345,
        input_bytes=784,
        output_bytes=10,
        input_scale=0.00390625,
        input_zero_point=-128,
        output_scale=0.125,
        output_zero_point=3,
        model_hash=bytes.fromhex("a983aa96e47b3a43"),
        board="mps2-an386",
        runtime="tinykd",
        model_name="model_int8",
    )
    base.update(kw)
    return P.DeviceInfo(**base)


def test_device_info_round_trip_and_layout():
    info = _info()
    raw = info.encode()
    assert P.DeviceInfo.decode(raw) == info
    assert info.counter_name == "instructions"
    # fixed part: 44 bytes (hash last), then length-prefixed strings
    assert struct.unpack_from("<I", raw, 4)[0] == 25_000_000
    assert struct.unpack_from("<f", raw, 20)[0] == 0.00390625
    assert struct.unpack_from("<i", raw, 24)[0] == -128
    assert raw[36:44] == info.model_hash
    assert raw[44] == len("mps2-an386") and raw[45:55] == b"mps2-an386"
    for cut in (0, 10, 44, 50, len(raw) - 1):
        with pytest.raises(P.ProtocolError):
            P.DeviceInfo.decode(raw[:cut])


def test_result_error_pong_loaded():
    r = P.Result(123456, bytes([0x80, 0x7F, 0, 1]), session=0xDEADBEEF, input_crc=zlib.crc32(b"x"))
    raw = r.encode()
    assert P.Result.decode(raw) == r
    # the trailer: session, input CRC-32, then the CRC-32 of everything before it
    assert raw[8:] == struct.pack("<II", 0xDEADBEEF, zlib.crc32(b"x")) + struct.pack("<I", zlib.crc32(raw[:-4]))
    assert P.Result.decode(P.Result(1, b"").encode()).output == b""
    with pytest.raises(P.ProtocolError):
        P.Result.decode(b"\x01\x00")
    for i in range(len(raw)):  # any damaged byte is caught by the trailer's CRC-32
        bad = bytearray(raw)
        bad[i] ^= 0x10
        with pytest.raises(P.ProtocolError, match="CRC-32"):
            P.Result.decode(bytes(bad))
    a = P.AudioResult(5, 6, bytes(range(200)) + bytes(290), bytes([1, 2, 3]), session=7, input_crc=8)
    assert P.AudioResult.decode(a.encode()) == a
    with pytest.raises(P.ProtocolError, match="CRC-32"):
        P.AudioResult.decode(a.encode()[:-1] + bytes([a.encode()[-1] ^ 1]))
    e = P.DeviceErrorMsg(P.ERR_BAD_LENGTH, P.INFER, 784)
    assert P.DeviceErrorMsg.decode(e.encode()) == e
    assert "wrong payload length" in e.text and "INFER" in e.text and "784" in e.text
    assert P.Pong.decode(P.Pong(1, 1024).encode()) == P.Pong(1, 1024)
    with pytest.raises(P.ProtocolError):
        P.Pong.decode(b"\x01")
    assert P.Loaded.decode(struct.pack("<IH", 1020, 4)) == P.Loaded(1020, 4)
    assert P.load_payload(1020, b"ab") == struct.pack("<I", 1020) + b"ab"
    with pytest.raises(P.ProtocolError):
        P.load_payload(0, bytes(P.MAX_PAYLOAD))
