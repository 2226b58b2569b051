package dev.electra;

/**
 * A WordPiece tokenizer (an HF tokenizer.json or a BERT vocab.txt): text to ids with offsets,
 * ids back to text, exactly as HF {@code tokenizers} does for the same files. Immutable: safe to
 * use from many threads at once. Close it when done ({@link AutoCloseable}); a tokenizer from
 * {@link Model#tokenizer()} is shared with the model, so closing either leaves the other valid.
 *
 * <p>Text crosses to the library as UTF-8. A string holding a lone surrogate (which has no UTF-8
 * form) throws {@link IllegalArgumentException} rather than being changed silently. Offsets are
 * UTF-8 byte offsets; {@link Encoding#charOffsets()} maps them to {@code char} indices.
 */
public final class Tokenizer extends NativeHandle {
    Tokenizer(long handle) {
        super(handle, Native::tokenizerFree, "Tokenizer");
    }

    /**
     * Loads a tokenizer: a model directory (its tokenizer.json, else vocab.txt; in the pair
     * layout discriminator/'s or generator/'s), an HF tokenizer.json (any file ending in .json)
     * or a BERT vocab.txt (any other file, BERT-uncased WordPiece). An unreadable path is
     * {@link Status#IO}; a file that is no tokenizer, or lacks [PAD] [UNK] [CLS] [SEP] [MASK],
     * {@link Status#FORMAT}.
     */
    public static Tokenizer load(String path) {
        return new Tokenizer(Native.tokenizerLoad(path));
    }

    /** Loads a tokenizer from the bytes of an HF tokenizer.json (an app's asset), copied. Errors as {@link #load}. */
    public static Tokenizer fromMemory(byte[] tokenizerJson) {
        return new Tokenizer(Native.tokenizerLoadMemory(tokenizerJson));
    }

    /** Vocabulary size and special token ids. */
    public TokenizerInfo info() {
        try {
            return new TokenizerInfo(Native.tokenizerInfo(handle()));
        } catch (ElectraException e) {
            throw translate(e);
        } finally {
            keepAlive();
        }
    }

    /** {@link #encode(String[], EncodeOptions)} with the defaults. */
    public Encoding encode(String... texts) {
        return encode(texts, null);
    }

    /**
     * Encodes texts as HF tokenizers does ([CLS] text [SEP] unless
     * {@code options.addSpecialTokens(false)}), each row padded with [PAD] to the longest and cut
     * to {@code options.maxLength} when set. {@code options} may be null (the defaults). No texts
     * is {@link Status#INVALID_ARGUMENT}.
     */
    public Encoding encode(String[] texts, EncodeOptions options) {
        return run(Utf8.strict(texts, "texts"), null, options);
    }

    /**
     * Encodes text pairs ([CLS] a [SEP] b [SEP], token type 1 on b's tokens; truncation cuts the
     * longer text first). {@code a} and {@code b} hold as many texts ({@link Status#SHAPE}
     * otherwise).
     */
    public Encoding encodePairs(String[] a, String[] b, EncodeOptions options) {
        byte[][] ta = Utf8.strict(a, "a");
        byte[][] tb = Utf8.strict(b, "b");
        if (ta.length != tb.length) {
            throw new ElectraException(Status.SHAPE, "a holds " + ta.length + " texts and b " + tb.length
                    + ": pairs need as many");
        }
        return run(ta, tb, options);
    }

    /** {@link #encodePairs(String[], String[], EncodeOptions)} with the defaults. */
    public Encoding encodePairs(String[] a, String[] b) {
        return encodePairs(a, b, null);
    }

    private Encoding run(byte[][] a, byte[][] b, EncodeOptions options) {
        boolean special = options == null || options.addSpecialTokens();
        int maxLength = options == null ? 0 : options.maxLength();
        try {
            return new Encoding(Native.tokenizerEncode(handle(), a, b, special, maxLength), a, b);
        } catch (ElectraException e) {
            throw translate(e);
        } finally {
            keepAlive();
        }
    }

    /**
     * The text of {@code ids}: WordPiece pieces glued, as HF decode with
     * clean_up_tokenization_spaces; special tokens left out when {@code skipSpecial}. An id
     * outside the vocabulary is {@link Status#INVALID_ARGUMENT}.
     */
    public String decode(int[] ids, boolean skipSpecial) {
        try {
            return Native.tokenizerDecode(handle(), ids, skipSpecial);
        } catch (ElectraException e) {
            throw translate(e);
        } finally {
            keepAlive();
        }
    }

    /** {@link #decode(int[], boolean)} leaving special tokens out. */
    public String decode(int[] ids) {
        return decode(ids, true);
    }

    /**
     * The id of a vocabulary entry (such as {@code "##ing"} or {@code "[MASK]"}, not text to
     * tokenize), or -1 when there is none.
     */
    public int tokenToId(String token) {
        byte[] t = Utf8.strict(token, "token");
        try {
            return Native.tokenizerTokenToId(handle(), t);
        } catch (ElectraException e) {
            throw translate(e);
        } finally {
            keepAlive();
        }
    }

    /** The vocabulary entry of {@code id}; an id outside the vocabulary is {@link Status#INVALID_ARGUMENT}. */
    public String idToToken(int id) {
        try {
            return Native.tokenizerIdToToken(handle(), id);
        } catch (ElectraException e) {
            throw translate(e);
        } finally {
            keepAlive();
        }
    }
}
