package dev.electra;

import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetEncoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/**
 * Text to and from the library's UTF-8. Java strings are UTF-16; a lone surrogate has no UTF-8
 * form, so it is an {@link IllegalArgumentException} (never silently replaced, which would shift
 * every offset after it). Offsets the library reports count UTF-8 bytes; {@link #charIndex}
 * maps them to {@code char} indices of the Java string.
 */
final class Utf8 {
    private Utf8() {}

    /** The UTF-8 bytes of {@code s}; null is {@link Status#NULL_POINTER}, a lone surrogate IllegalArgumentException. */
    static byte[] strict(String s, String what) {
        if (s == null) {
            throw new ElectraException(Status.NULL_POINTER, what + " is null");
        }
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                i++;
            } else if (Character.isSurrogate(c)) {
                throw new IllegalArgumentException(
                        what + " holds a lone surrogate (U+" + Integer.toHexString(c).toUpperCase() + ") at index " + i
                                + ": it has no UTF-8 form");
            }
        }
        CharsetEncoder enc = StandardCharsets.UTF_8.newEncoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
        try {
            ByteBuffer b = enc.encode(CharBuffer.wrap(s));
            byte[] out = new byte[b.remaining()];
            b.get(out);
            return out;
        } catch (CharacterCodingException e) {
            throw new IllegalArgumentException(what + " is not valid Unicode: " + e, e);
        }
    }

    /** {@link #strict} of each text. */
    static byte[][] strict(String[] texts, String what) {
        if (texts == null) {
            throw new ElectraException(Status.NULL_POINTER, what + " is null");
        }
        byte[][] out = new byte[texts.length][];
        for (int i = 0; i < texts.length; i++) {
            out[i] = strict(texts[i], what + "[" + i + "]");
        }
        return out;
    }

    /**
     * For each byte offset {@code 0..utf8.length} of {@code utf8} (the UTF-8 form of {@code s}),
     * the index of the {@code char} of {@code s} it starts (inside a character: that character's
     * index; {@code utf8.length}: {@code s.length()}).
     */
    static int[] charIndex(byte[] utf8) {
        int[] map = new int[utf8.length + 1];
        int c = 0;
        int b = 0;
        while (b < utf8.length) {
            int lead = utf8[b] & 0xFF;
            int len = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
            for (int k = 0; k < len && b + k < utf8.length; k++) {
                map[b + k] = c;
            }
            b += len;
            c += len == 4 ? 2 : 1;
        }
        map[utf8.length] = c;
        return map;
    }

    /** The char index of byte offset {@code b} ({@link #charIndex} map), clamped. */
    static int at(int[] map, int b) {
        return map[Math.max(0, Math.min(b, map.length - 1))];
    }
}
