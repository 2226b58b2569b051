package electra

// #include "electra.h"
import "C"

import (
	"errors"
	"runtime"
	"strings"
)

// Pooling is how EmbedTexts turns a text's last hidden states into one vector.
type Pooling uint32

// The poolings of electra_text_params.
const (
	PoolingMean Pooling = C.ELECTRA_POOLING_MEAN // the mean over the text's tokens (the default)
	PoolingCLS  Pooling = C.ELECTRA_POOLING_CLS  // the [CLS] token's state
)

// TextOptions are the options of the Session calls on text; the zero value is the default.
// Texts are tokenized as HF does ([CLS] text [SEP]), cut to MaxLength tokens, and run in
// padded batches sorted by length: results do not depend on BatchSize (to 1e-6).
type TextOptions struct {
	// Tokenizer overrides the model's own (nil: the one saved beside the model; a model
	// without one is ErrUnsupported).
	Tokenizer *Tokenizer
	// BatchSize is the number of texts per forward pass (0: 32).
	BatchSize int
	// MaxLength cuts each text to this many tokens, [CLS] and [SEP] included (0: the model's
	// MaxPositionEmbeddings; more than that is ErrInvalidArgument).
	MaxLength int
	// Pooling (EmbedTexts): PoolingMean (the default) or PoolingCLS.
	Pooling Pooling
	// Normalize (EmbedTexts) scales each embedding to unit length: cosine similarity is then
	// a dot product.
	Normalize bool
}

func (o TextOptions) params() (textParams, error) {
	b, err := checkLength("BatchSize", o.BatchSize)
	if err != nil {
		return textParams{}, err
	}
	l, err := checkLength("MaxLength", o.MaxLength)
	if err != nil {
		return textParams{}, err
	}
	return textParams{batchSize: b, maxLength: l, pooling: uint32(o.Pooling), normalize: o.Normalize}, nil
}

// textCall locks s and opts.Tokenizer (when set) and runs f with their handles; the
// tokenizer handle is NULL for the model's own.
func (s *Session) textCall(opts TextOptions, f func(*C.electra_session, *C.electra_tokenizer, textParams) error) error {
	p, err := opts.params()
	if err != nil {
		return err
	}
	var t *C.electra_tokenizer
	if opts.Tokenizer != nil {
		if t, err = opts.Tokenizer.acquire(); err != nil {
			return err
		}
		defer opts.Tokenizer.mu.RUnlock()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ptr == nil {
		return closedError("session")
	}
	err = f(s.ptr, t, p)
	runtime.KeepAlive(s)
	runtime.KeepAlive(opts.Tokenizer)
	return err
}

// EmbedTexts returns one sentence embedding (HiddenSize floats) per text, pooled from the
// last hidden states of the discriminator (or a classifier) as opts say. Each equals that
// text's embedding computed alone, to 1e-6.
func (s *Session) EmbedTexts(texts []string, opts TextOptions) ([][]float32, error) {
	h := s.info.HiddenSize
	out := make([]float32, len(texts)*h)
	if len(texts) > 0 {
		ct := cTexts(texts)
		defer cFree(ct)
		err := s.textCall(opts, func(sp *C.electra_session, t *C.electra_tokenizer, p textParams) error {
			return nativeSessionEmbedTexts(sp, t, ct, len(texts), p, out)
		})
		if err != nil {
			return nil, err
		}
	}
	rows := make([][]float32, len(texts))
	for i := range rows {
		rows[i] = out[i*h : (i+1)*h : (i+1)*h]
	}
	return rows, nil
}

// Classification is a classifier's answer for one text (or text pair).
type Classification struct {
	// Probabilities has one entry per label, in label-id order: a softmax (with a single
	// label: the raw regression output).
	Probabilities []float32
	LabelID       int    // the most probable label
	Label         string // its name (config.json's id2label; LABEL_<i> where it has none)
}

// Labels returns the label names of the session's classifier in id order (nil without one).
func (s *Session) Labels() []string { return append([]string(nil), s.labels...) }

// ClassifyTexts runs a fine-tuned classifier on texts. A model without a classification head
// is ErrUnsupported.
func (s *Session) ClassifyTexts(texts []string, opts TextOptions) ([]Classification, error) {
	return s.classify(texts, nil, opts)
}

// ClassifyTextPairs runs a fine-tuned classifier on text pairs (a[i], b[i]), encoded as
// sentence-pair tasks read them. a and b must have the same length (else ErrShape).
func (s *Session) ClassifyTextPairs(a, b []string, opts TextOptions) ([]Classification, error) {
	if len(a) != len(b) {
		return nil, newError(StatusShape, "shape mismatch: %d first texts but %d second texts", len(a), len(b))
	}
	if b == nil {
		b = []string{}
	}
	return s.classify(a, b, opts)
}

func (s *Session) classify(texts, pairs []string, opts TextOptions) ([]Classification, error) {
	l := s.info.NumLabels
	if l == 0 {
		return nil, newError(StatusUnsupported,
			"unsupported: classification needs a fine-tuned classifier (the model has no classification head)")
	}
	out := make([]float32, len(texts)*l)
	if len(texts) > 0 {
		ct := cTexts(texts)
		defer cFree(ct)
		var cp *C.electra_text
		if pairs != nil {
			cp = cTexts(pairs)
			defer cFree(cp)
		}
		err := s.textCall(opts, func(sp *C.electra_session, t *C.electra_tokenizer, p textParams) error {
			return nativeSessionClassifyTexts(sp, t, ct, cp, len(texts), p, out)
		})
		if err != nil {
			return nil, err
		}
	}
	res := make([]Classification, len(texts))
	for i := range res {
		probs := out[i*l : (i+1)*l : (i+1)*l]
		best := 0
		for j, v := range probs {
			if v > probs[best] {
				best = j
			}
		}
		res[i] = Classification{Probabilities: probs, LabelID: best, Label: s.labels[best]}
	}
	return res, nil
}

// WordScore is one word of DetectText: its byte span in the text, the word itself, and the
// probability that it was replaced (the largest of its WordPiece pieces').
type WordScore struct {
	Start, End int // text[Start:End] is the word
	Word       string
	Score      float32
}

// DetectText runs replaced-token detection on one text: every word (as BERT splits words: at
// whitespace and punctuation) in text order, with the probability that it was replaced. Words
// past opts.MaxLength tokens are not scored.
func (s *Session) DetectText(text string, opts TextOptions) ([]WordScore, error) {
	// A word has at least one byte: a buffer of len(text) entries (capped) is usually enough.
	guess := len(text)
	if guess > 4096 {
		guess = 4096
	}
	var out []C.electra_word_score
	n := 0
	err := s.textCall(opts, func(sp *C.electra_session, t *C.electra_tokenizer, p textParams) error {
		for tries := 0; ; tries++ {
			out = make([]C.electra_word_score, guess+1)
			var err error
			n, err = nativeSessionDetectText(sp, t, text, p, out)
			if errors.Is(err, ErrBufferTooSmall) && n+1 > len(out) && tries < 2 {
				guess = n
				continue
			}
			return err
		}
	})
	if err != nil {
		return nil, err
	}
	words := make([]WordScore, n)
	for i := range words {
		w := out[i]
		start, end := int(w.start), int(w.end)
		words[i] = WordScore{Start: start, End: end, Word: text[start:end], Score: float32(w.score)}
	}
	return words, nil
}

// TokenScore is one candidate of FillMask.
type TokenScore struct {
	ID    int32
	Token string // the vocabulary entry (IDToToken)
	Score float32
}

// FillMask predicts the tokens behind the [MASK]s of text with the generator: for each mask,
// in text order, its topK most likely tokens, best first (topK above the vocabulary size is
// cut to it). A text without [MASK] is ErrInvalidArgument; a model without a generator
// ErrUnsupported.
func (s *Session) FillMask(text string, topK int, opts TextOptions) ([][]TokenScore, error) {
	if topK < 1 {
		return nil, newError(StatusInvalidArgument, "invalid argument: topK must be at least 1, got %d", topK)
	}
	k := topK
	if v := s.info.VocabSize; v > 0 && k > v {
		k = v
	}
	masks := strings.Count(text, "[MASK]")
	if masks == 0 {
		masks = 1
	}
	var out []C.electra_token_score
	n := 0
	err := s.textCall(opts, func(sp *C.electra_session, t *C.electra_tokenizer, p textParams) error {
		for tries := 0; ; tries++ {
			out = make([]C.electra_token_score, masks*k)
			var err error
			n, err = nativeSessionFillMaskText(sp, t, text, topK, p, out)
			if errors.Is(err, ErrBufferTooSmall) && n*k > len(out) && tries < 2 {
				masks = n
				continue
			}
			return err
		}
	})
	if err != nil {
		return nil, err
	}
	tok := opts.Tokenizer
	if tok == nil {
		tok = s.tok
	}
	res := make([][]TokenScore, n)
	for i := range res {
		res[i] = make([]TokenScore, k)
		for j := range res[i] {
			c := out[i*k+j]
			res[i][j] = TokenScore{ID: int32(c.id), Score: float32(c.score)}
			if tok != nil {
				if res[i][j].Token, err = tok.IDToToken(res[i][j].ID); err != nil {
					return nil, err
				}
			}
		}
	}
	return res, nil
}
