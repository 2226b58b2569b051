package electra

// #include "electra.h"
import "C"

import (
	"errors"
	"runtime"
	"sync"
)

// TokenizerInfo is what a tokenizer holds (electra_tokenizer_info).
type TokenizerInfo struct {
	VocabSize int // number of ids (a model's VocabSize must be at least this)
	PadID     int32
	UnkID     int32
	ClsID     int32
	SepID     int32
	MaskID    int32
}

// Tokenizer is a BERT WordPiece tokenizer (an HF tokenizer.json or a vocab.txt) that encodes
// text exactly as HF `tokenizers` does. It is immutable and safe for concurrent use. Strings
// are passed to the library with their length: they may hold NUL bytes (a character the BERT
// normalizer drops, as HF does); text that is not valid UTF-8 is ErrInvalidArgument.
type Tokenizer struct {
	mu   sync.RWMutex // read-held by calls, write-held by Close
	ptr  *C.electra_tokenizer
	info TokenizerInfo
}

func wrapTokenizer(p *C.electra_tokenizer) (*Tokenizer, error) {
	info, err := nativeTokenizerInfo(p)
	if err != nil {
		nativeTokenizerFree(p)
		return nil, err
	}
	t := &Tokenizer{ptr: p, info: info}
	runtime.SetFinalizer(t, (*Tokenizer).Close)
	return t, nil
}

// LoadTokenizer loads a tokenizer from path: a model directory (its tokenizer.json, else
// vocab.txt; in the pair layout discriminator/'s or generator/'s), an HF tokenizer.json (any
// file ending in .json) or a BERT vocab.txt (any other file; BERT-uncased WordPiece). A
// tokenizer.json's own truncation and padding are ignored (EncodeOptions decide). ErrIO for an
// unreadable path, ErrFormat for a file that is not a tokenizer or lacks [PAD] [UNK] [CLS]
// [SEP] [MASK].
func LoadTokenizer(path string) (*Tokenizer, error) {
	if err := CheckABI(); err != nil {
		return nil, err
	}
	p, err := nativeTokenizerLoad(path)
	if err != nil {
		return nil, err
	}
	return wrapTokenizer(p)
}

// LoadTokenizerFromMemory loads a tokenizer from the bytes of an HF tokenizer.json (an
// embedded asset, say); the bytes are copied. Errors as LoadTokenizer.
func LoadTokenizerFromMemory(tokenizerJSON []byte) (*Tokenizer, error) {
	if err := CheckABI(); err != nil {
		return nil, err
	}
	p, err := nativeTokenizerLoadFromMemory(tokenizerJSON)
	runtime.KeepAlive(tokenizerJSON)
	if err != nil {
		return nil, err
	}
	return wrapTokenizer(p)
}

// Close frees the tokenizer. It is idempotent; a model or session sharing it is unaffected.
func (t *Tokenizer) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ptr != nil {
		nativeTokenizerFree(t.ptr)
		t.ptr = nil
		runtime.SetFinalizer(t, nil)
	}
	return nil
}

// acquire read-locks t and returns its handle; call t.mu.RUnlock when done (also on error).
func (t *Tokenizer) acquire() (*C.electra_tokenizer, error) {
	if t == nil {
		return nil, newError(StatusInvalidHandle, "invalid handle: the tokenizer is nil")
	}
	t.mu.RLock()
	if t.ptr == nil {
		t.mu.RUnlock()
		return nil, closedError("tokenizer")
	}
	return t.ptr, nil
}

// Info returns the vocabulary size and the special tokens' ids.
func (t *Tokenizer) Info() (TokenizerInfo, error) {
	if _, err := t.acquire(); err != nil {
		return TokenizerInfo{}, err
	}
	defer t.mu.RUnlock()
	return t.info, nil
}

// EncodeOptions are the options of Encode and EncodePairs; the zero value is HF's default
// (special tokens added, no length limit).
type EncodeOptions struct {
	// NoSpecialTokens leaves out [CLS] and [SEP].
	NoSpecialTokens bool
	// MaxLength cuts each row to at most this many tokens, special tokens included (pairs: the
	// longer text first). 0: no limit.
	MaxLength int
}

// Span is a byte range [Start, End) of a text.
type Span struct {
	Start, End int
}

// Encoding is a batch of encoded texts, padded with [PAD] to the longest row: Batch rows of
// SeqLen tokens each, row-major, ready for Session.Discriminate, HiddenStates and the like:
//
//	s.HiddenStates(e.IDs, e.AttentionMask, e.TokenTypeIDs, e.Batch, e.SeqLen)
type Encoding struct {
	Batch, SeqLen int
	IDs           []int32 // token ids, Batch*SeqLen
	AttentionMask []int32 // 1 = token, 0 = padding
	TokenTypeIDs  []int32 // 0 = first text, 1 = second text of a pair
	Offsets       []Span  // byte offsets of each token in its own text; {0, 0} for special and padding tokens
}

// Row returns the ids of row i without its padding.
func (e *Encoding) Row(i int) []int32 {
	return e.IDs[i*e.SeqLen : i*e.SeqLen+e.Len(i)]
}

// Len returns the number of tokens of row i, padding excluded.
func (e *Encoding) Len(i int) int {
	n := 0
	for _, m := range e.AttentionMask[i*e.SeqLen : (i+1)*e.SeqLen] {
		if m != 0 {
			n++
		}
	}
	return n
}

// Encode tokenizes a batch of texts as HF `tokenizers` does ([CLS] text [SEP] unless
// opts.NoSpecialTokens).
func (t *Tokenizer) Encode(texts []string, opts EncodeOptions) (*Encoding, error) {
	return t.encode(texts, nil, opts)
}

// EncodePairs tokenizes text pairs ([CLS] a [SEP] b [SEP], token types 0 then 1), as
// sentence-pair tasks read them. a and b must have the same length (else ErrShape).
func (t *Tokenizer) EncodePairs(a, b []string, opts EncodeOptions) (*Encoding, error) {
	if len(a) != len(b) {
		return nil, newError(StatusShape, "shape mismatch: %d first texts but %d second texts", len(a), len(b))
	}
	if b == nil {
		b = []string{}
	}
	return t.encode(a, b, opts)
}

// encodeGuessLimit caps the elements per array of a first, guessed encode call; past it the
// row length is asked first.
const encodeGuessLimit = 1 << 20

func (t *Tokenizer) encode(texts, pairs []string, opts EncodeOptions) (*Encoding, error) {
	maxLength, err := checkLength("MaxLength", opts.MaxLength)
	if err != nil {
		return nil, err
	}
	p, err := t.acquire()
	if err != nil {
		return nil, err
	}
	defer t.mu.RUnlock()
	n := len(texts)
	if n == 0 {
		return &Encoding{}, nil
	}
	ct := cTexts(texts)
	defer cFree(ct)
	var cp *C.electra_text
	if pairs != nil {
		cp = cTexts(pairs)
		defer cFree(cp)
	}
	// Every token but [CLS] and [SEP] covers at least one byte of its text (almost always), so
	// a row is rarely longer than its bytes plus 3; a short guess costs a second call.
	longest := 0
	for i, s := range texts {
		l := len(s)
		if pairs != nil {
			l += len(pairs[i])
		}
		if l > longest {
			longest = l
		}
	}
	rowGuess := longest + 3
	if maxLength > 0 && int(maxLength) < rowGuess {
		rowGuess = int(maxLength)
	}
	capacity := n * rowGuess
	if capacity > encodeGuessLimit {
		capacity = 0
	}
	special := !opts.NoSpecialTokens
	for tries := 0; ; tries++ {
		var ids, mask, types []int32
		var offsets []uint32
		if capacity > 0 {
			ids, mask, types = make([]int32, capacity), make([]int32, capacity), make([]int32, capacity)
			offsets = make([]uint32, 2*capacity)
		}
		seqLen, err := nativeTokenizerEncode(p, ct, cp, n, special, maxLength, ids, mask, types, offsets, capacity)
		need := n * seqLen
		if (err == nil && capacity == 0 && need > 0) || (errors.Is(err, ErrBufferTooSmall) && need > capacity && tries < 2) {
			capacity = need
			continue
		}
		if err != nil {
			return nil, err
		}
		e := &Encoding{Batch: n, SeqLen: seqLen, IDs: ids[:need:need], AttentionMask: mask[:need:need],
			TokenTypeIDs: types[:need:need], Offsets: make([]Span, need)}
		if capacity > 2*need {
			// A generous guess: keep only what is used.
			e.IDs = append([]int32(nil), e.IDs...)
			e.AttentionMask = append([]int32(nil), e.AttentionMask...)
			e.TokenTypeIDs = append([]int32(nil), e.TokenTypeIDs...)
		}
		for i := range e.Offsets {
			e.Offsets[i] = Span{Start: int(offsets[2*i]), End: int(offsets[2*i+1])}
		}
		return e, nil
	}
}

// Decode returns the text of ids: WordPiece pieces glued, as HF decode with
// clean_up_tokenization_spaces; special tokens left out when skipSpecial. An id outside the
// vocabulary is ErrInvalidArgument.
func (t *Tokenizer) Decode(ids []int32, skipSpecial bool) (string, error) {
	p, err := t.acquire()
	if err != nil {
		return "", err
	}
	defer t.mu.RUnlock()
	s, err := nativeTokenizerDecode(p, ids, skipSpecial)
	runtime.KeepAlive(ids)
	return s, err
}

// TokenToID returns the id of a vocabulary entry (such as "##ing" or "[MASK]"; not text to
// tokenize), or -1 when the vocabulary has no such entry.
func (t *Tokenizer) TokenToID(token string) (int32, error) {
	p, err := t.acquire()
	if err != nil {
		return -1, err
	}
	defer t.mu.RUnlock()
	return nativeTokenizerTokenToID(p, token)
}

// IDToToken returns the vocabulary entry of id (ErrInvalidArgument outside the vocabulary).
func (t *Tokenizer) IDToToken(id int32) (string, error) {
	p, err := t.acquire()
	if err != nil {
		return "", err
	}
	defer t.mu.RUnlock()
	return nativeTokenizerIDToToken(p, id)
}

// checkLength converts a length option to the uint32 of the C structs.
func checkLength(what string, v int) (uint32, error) {
	if v < 0 || uint64(v) > uint64(^uint32(0)) {
		return 0, newError(StatusInvalidArgument, "invalid argument: %s = %d", what, v)
	}
	return uint32(v), nil
}
