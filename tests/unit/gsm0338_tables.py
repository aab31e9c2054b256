"""GSM 03.38 / 3GPP TS 23.038 default alphabet, written from the standard's table (as in the
Unicode consortium's GSM0338.TXT mapping) by Unicode character name, independently of
pbx_textback.core.text.sms. Septets not listed in BASIC_NON_ASCII map to the same ASCII character."""
import unicodedata

# septet -> Unicode name, for every position that is not plain ASCII-identical.
BASIC_NON_ASCII = {
    0x00: "COMMERCIAL AT", 0x01: "POUND SIGN", 0x02: "DOLLAR SIGN", 0x03: "YEN SIGN",
    0x04: "LATIN SMALL LETTER E WITH GRAVE", 0x05: "LATIN SMALL LETTER E WITH ACUTE",
    0x06: "LATIN SMALL LETTER U WITH GRAVE", 0x07: "LATIN SMALL LETTER I WITH GRAVE",
    0x08: "LATIN SMALL LETTER O WITH GRAVE", 0x09: "LATIN CAPITAL LETTER C WITH CEDILLA",
    0x0A: "LINE FEED", 0x0B: "LATIN CAPITAL LETTER O WITH STROKE",
    0x0C: "LATIN SMALL LETTER O WITH STROKE", 0x0D: "CARRIAGE RETURN",
    0x0E: "LATIN CAPITAL LETTER A WITH RING ABOVE", 0x0F: "LATIN SMALL LETTER A WITH RING ABOVE",
    0x10: "GREEK CAPITAL LETTER DELTA", 0x11: "LOW LINE", 0x12: "GREEK CAPITAL LETTER PHI",
    0x13: "GREEK CAPITAL LETTER GAMMA", 0x14: "GREEK CAPITAL LETTER LAMDA",
    0x15: "GREEK CAPITAL LETTER OMEGA", 0x16: "GREEK CAPITAL LETTER PI",
    0x17: "GREEK CAPITAL LETTER PSI", 0x18: "GREEK CAPITAL LETTER SIGMA",
    0x19: "GREEK CAPITAL LETTER THETA", 0x1A: "GREEK CAPITAL LETTER XI",
    0x1B: None,  # ESC to the extension table
    0x1C: "LATIN CAPITAL LETTER AE", 0x1D: "LATIN SMALL LETTER AE",
    0x1E: "LATIN SMALL LETTER SHARP S", 0x1F: "LATIN CAPITAL LETTER E WITH ACUTE",
    0x24: "CURRENCY SIGN", 0x40: "INVERTED EXCLAMATION MARK",
    0x5B: "LATIN CAPITAL LETTER A WITH DIAERESIS", 0x5C: "LATIN CAPITAL LETTER O WITH DIAERESIS",
    0x5D: "LATIN CAPITAL LETTER N WITH TILDE", 0x5E: "LATIN CAPITAL LETTER U WITH DIAERESIS",
    0x5F: "SECTION SIGN", 0x60: "INVERTED QUESTION MARK",
    0x7B: "LATIN SMALL LETTER A WITH DIAERESIS", 0x7C: "LATIN SMALL LETTER O WITH DIAERESIS",
    0x7D: "LATIN SMALL LETTER N WITH TILDE", 0x7E: "LATIN SMALL LETTER U WITH DIAERESIS",
    0x7F: "LATIN SMALL LETTER A WITH GRAVE",
}

EXTENSION = {  # code after ESC -> Unicode name
    0x0A: "FORM FEED", 0x14: "CIRCUMFLEX ACCENT", 0x28: "LEFT CURLY BRACKET",
    0x29: "RIGHT CURLY BRACKET", 0x2F: "REVERSE SOLIDUS", 0x3C: "LEFT SQUARE BRACKET",
    0x3D: "TILDE", 0x3E: "RIGHT SQUARE BRACKET", 0x40: "VERTICAL LINE", 0x65: "EURO SIGN",
}

_CONTROL = {"LINE FEED": "\n", "CARRIAGE RETURN": "\r", "FORM FEED": "\f"}


def _char(name):
    return _CONTROL.get(name) or unicodedata.lookup(name)


def basic_table():
    """septet -> char (None for ESC)."""
    out = {}
    for code in range(128):
        if code in BASIC_NON_ASCII:
            name = BASIC_NON_ASCII[code]
            out[code] = None if name is None else _char(name)
        else:
            out[code] = chr(code)
    return out


def extension_table():
    """char -> code after ESC."""
    return {_char(name): code for code, name in EXTENSION.items()}


GSM_BASIC_CHARS = frozenset(c for c in basic_table().values() if c is not None)
GSM_EXT_CHARS = frozenset(extension_table())
