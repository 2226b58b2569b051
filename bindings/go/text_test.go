package electra_test

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	electra "github.com/electra-project/electra/bindings/go"
)

// textDirs are the models of the text tests, made once: a pre-trained pair with the
// tokenizer fixture's vocab.txt beside the discriminator, a 3-label classifier with named
// labels and the vocab.txt, and a pair without a tokenizer.
type textDirs struct {
	pair, cls, bare string
}

var (
	textOnce   sync.Once
	textModels textDirs
	textErr    error
	textRoot   string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if textRoot != "" {
		os.RemoveAll(textRoot)
	}
	os.Exit(code)
}

func tokFixture(parts ...string) string {
	return fixture(append([]string{"tokenizer"}, parts...)...)
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}

func makeTextModels() (textDirs, error) {
	root, err := os.MkdirTemp("", "electra-go-text-")
	if err != nil {
		return textDirs{}, err
	}
	textRoot = root
	d := textDirs{pair: filepath.Join(root, "pair"), cls: filepath.Join(root, "cls"), bare: filepath.Join(root, "bare")}
	tr, err := electra.NewTrainer("tiny", map[string]interface{}{
		"vocab_size": 3000, "max_seq_len": 32, "mask_token_id": 4,
		"special_token_ids": []int{0, 1, 2, 3, 4}, "threads": 1, "seed": 11,
	})
	if err != nil {
		return d, err
	}
	defer tr.Close()
	for _, dir := range []string{d.pair, d.bare} {
		if err := tr.Export(dir); err != nil {
			return d, err
		}
	}
	if err := copyFile(tokFixture("vocab.txt"), filepath.Join(d.pair, "discriminator", "vocab.txt")); err != nil {
		return d, err
	}
	ft, err := electra.NewFineTuner(filepath.Join(d.pair, "discriminator"), 3, map[string]interface{}{"seed": 5, "threads": 1})
	if err != nil {
		return d, err
	}
	defer ft.Close()
	if err := ft.Save(d.cls); err != nil {
		return d, err
	}
	// Name the labels as a user's config.json would.
	cfgPath := filepath.Join(d.cls, "config.json")
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		return d, err
	}
	var cfg map[string]interface{}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return d, err
	}
	cfg["id2label"] = map[string]string{"0": "sad", "1": "neutral", "2": "happy"}
	cfg["label2id"] = map[string]int{"sad": 0, "neutral": 1, "happy": 2}
	if raw, err = json.Marshal(cfg); err != nil {
		return d, err
	}
	if err := os.WriteFile(cfgPath, raw, 0o644); err != nil {
		return d, err
	}
	return d, copyFile(tokFixture("vocab.txt"), filepath.Join(d.cls, "vocab.txt"))
}

func textDirsFor(tb testing.TB) textDirs {
	tb.Helper()
	textOnce.Do(func() { textModels, textErr = makeTextModels() })
	if textErr != nil {
		tb.Fatalf("making the text models: %v", textErr)
	}
	return textModels
}

// textSession loads dir and opens a one-thread session over it (both closed at cleanup).
func textSession(tb testing.TB, dir string) (*electra.Model, *electra.Session) {
	tb.Helper()
	m := mustLoad(tb, dir)
	s, err := electra.NewSessionWithOptions(m, electra.SessionOptions{Threads: 1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return m, s
}

func mustTokenizer(tb testing.TB, path string) *electra.Tokenizer {
	tb.Helper()
	t, err := electra.LoadTokenizer(path)
	if err != nil {
		tb.Fatalf("LoadTokenizer(%s): %v", path, err)
	}
	tb.Cleanup(func() { t.Close() })
	return t
}

var sampleTexts = []string{
	"Call me Ishmael.",
	"Some years ago, never mind how long precisely, having little or no money in my purse",
	"café naïve",
	"",
	"白鲸记 Moby Dick 是一本书。 I ❤️ whales 🐋",
	strings.Repeat("the whale ", 100), // longer than the model's 128 positions: cut
	"nul\x00char and\ttabs",
}

func maxAbsDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

// --- encode: the HF fixtures ---------------------------------------------------------------

// hfEnc is one encoding of tests/fixtures/tokenizer/encode.json (HF `tokenizers`); offsets
// count characters.
type hfEnc struct {
	IDs     []int32  `json:"ids"`
	Types   []int32  `json:"type_ids"`
	Mask    []int32  `json:"attention_mask"`
	Offsets [][2]int `json:"offsets"`
}

type hfCase struct {
	hfEnc
	Text      string  `json:"text"`
	A         string  `json:"a"`
	B         *string `json:"b"`
	MaxLength int     `json:"max_length"`
}

type hfFixture struct {
	Single    []hfCase `json:"single"`
	Pairs     []hfCase `json:"pairs"`
	Truncated []hfCase `json:"truncated"`
	Batches   []struct {
		Texts []string `json:"texts"`
		Rows  []hfEnc  `json:"rows"`
	} `json:"batches"`
}

// byteAt is the byte offset of character c of s.
func byteAt(s string, c int) int {
	for b := range s {
		if c == 0 {
			return b
		}
		c--
	}
	return len(s)
}

// checkRow compares row r of e with HF's encoding of texts (first, second), then padding.
func checkRow(tb testing.TB, what string, e *electra.Encoding, r int, want hfEnc, texts [2]string) {
	tb.Helper()
	t := e.SeqLen
	if len(want.IDs) > t {
		tb.Fatalf("%s: row of %d tokens, want %d", what, t, len(want.IDs))
	}
	for j := 0; j < t; j++ {
		k := r*t + j
		if j >= len(want.IDs) {
			if e.IDs[k] != 0 || e.AttentionMask[k] != 0 || e.TokenTypeIDs[k] != 0 || e.Offsets[k] != (electra.Span{}) {
				tb.Fatalf("%s: padding token %d is %d/%d/%d/%v", what, j, e.IDs[k], e.AttentionMask[k], e.TokenTypeIDs[k], e.Offsets[k])
			}
			continue
		}
		text := texts[want.Types[j]]
		span := electra.Span{Start: byteAt(text, want.Offsets[j][0]), End: byteAt(text, want.Offsets[j][1])}
		if e.IDs[k] != want.IDs[j] || e.TokenTypeIDs[k] != want.Types[j] || e.AttentionMask[k] != want.Mask[j] || e.Offsets[k] != span {
			tb.Fatalf("%s: token %d is id %d type %d mask %d span %v, HF: %d %d %d %v\nids %v\nHF  %v", what, j,
				e.IDs[k], e.TokenTypeIDs[k], e.AttentionMask[k], e.Offsets[k], want.IDs[j], want.Types[j], want.Mask[j], span,
				e.IDs[r*t:(r+1)*t], want.IDs)
		}
	}
	n := 0
	for _, m := range want.Mask {
		n += int(m)
	}
	if e.Len(r) != n {
		tb.Fatalf("%s: Len = %d, want %d", what, e.Len(r), n)
	}
}

func TestTokenizerEncodeMatchesHF(t *testing.T) {
	raw, err := os.ReadFile(tokFixture("encode.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fx hfFixture
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	tokJSON, err := os.ReadFile(tokFixture("hf", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	fromMem, err := electra.LoadTokenizerFromMemory(tokJSON)
	if err != nil {
		t.Fatal(err)
	}
	defer fromMem.Close()
	m := mustLoad(t, textDirsFor(t).pair)
	fromModel, err := m.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	defer fromModel.Close()
	toks := map[string]*electra.Tokenizer{
		"tokenizer.json": mustTokenizer(t, tokFixture("hf", "tokenizer.json")),
		"vocab.txt":      mustTokenizer(t, tokFixture("vocab.txt")),
		"memory":         fromMem,
		"model":          fromModel,
	}
	for name, tok := range toks {
		info, err := tok.Info()
		if err != nil {
			t.Fatal(err)
		}
		if want := (electra.TokenizerInfo{VocabSize: 3000, PadID: 0, UnkID: 1, ClsID: 2, SepID: 3, MaskID: 4}); info != want {
			t.Fatalf("%s: Info() = %+v, want %+v", name, info, want)
		}
		// All single texts in one padded batch.
		texts := make([]string, len(fx.Single))
		for i, c := range fx.Single {
			texts[i] = c.Text
		}
		e, err := tok.Encode(texts, electra.EncodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if e.Batch != len(texts) || len(e.IDs) != e.Batch*e.SeqLen || len(e.Offsets) != len(e.IDs) {
			t.Fatalf("%s: batch %d seqLen %d, %d ids, %d offsets", name, e.Batch, e.SeqLen, len(e.IDs), len(e.Offsets))
		}
		for i, c := range fx.Single {
			checkRow(t, fmt.Sprintf("%s single %q", name, c.Text), e, i, c.hfEnc, [2]string{c.Text, ""})
		}
		// All pairs in one batch.
		as, bs := make([]string, len(fx.Pairs)), make([]string, len(fx.Pairs))
		for i, c := range fx.Pairs {
			as[i], bs[i] = c.A, *c.B
		}
		e, err = tok.EncodePairs(as, bs, electra.EncodeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range fx.Pairs {
			checkRow(t, fmt.Sprintf("%s pair %q %q", name, c.A, *c.B), e, i, c.hfEnc, [2]string{c.A, *c.B})
		}
		for _, c := range fx.Truncated {
			opts := electra.EncodeOptions{MaxLength: c.MaxLength}
			b := ""
			if c.B != nil {
				b = *c.B
				e, err = tok.EncodePairs([]string{c.A}, []string{b}, opts)
			} else {
				e, err = tok.Encode([]string{c.A}, opts)
			}
			if err != nil {
				t.Fatal(err)
			}
			checkRow(t, fmt.Sprintf("%s truncated to %d: %q %q", name, c.MaxLength, c.A, b), e, 0, c.hfEnc, [2]string{c.A, b})
		}
		for _, c := range fx.Batches {
			e, err = tok.Encode(c.Texts, electra.EncodeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for i, row := range c.Rows {
				checkRow(t, fmt.Sprintf("%s batch row %d %q", name, i, c.Texts[i]), e, i, row, [2]string{c.Texts[i], ""})
			}
		}
	}
}

func TestTokenizerMultilingualAndLookups(t *testing.T) {
	tok := mustTokenizer(t, tokFixture("vocab.txt"))
	text := "Café naïve 白鲸记 I ❤️ whales 🐋!"
	e, err := tok.Encode([]string{text}, electra.EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if e.IDs[0] != 2 || e.IDs[e.Len(0)-1] != 3 {
		t.Fatalf("no [CLS] ... [SEP]: %v", e.Row(0))
	}
	prevEnd := 0
	for j := 1; j < e.Len(0)-1; j++ {
		sp := e.Offsets[j]
		piece := text[sp.Start:sp.End]
		if sp.Start < prevEnd || sp.End <= sp.Start || !utf8.ValidString(piece) {
			t.Fatalf("token %d: span %v (%q) after %d", j, sp, piece, prevEnd)
		}
		prevEnd = sp.End
		tokStr, err := tok.IDToToken(e.IDs[j])
		if err != nil {
			t.Fatal(err)
		}
		// Lowercased ASCII pieces are their text; accents are stripped, CJK characters are
		// words of their own, and the emoji are [UNK].
		if piece == strings.ToLower(piece) && isASCII(piece) && strings.TrimPrefix(tokStr, "##") != piece && tokStr != "[UNK]" {
			t.Fatalf("token %d %q covers %q", j, tokStr, piece)
		}
	}
	if first := text[e.Offsets[1].Start:e.Offsets[1].End]; !strings.HasPrefix("Café", first) {
		t.Fatalf("first token covers %q", first)
	}
	// Without special tokens: the same pieces.
	plain, err := tok.Encode([]string{text}, electra.EncodeOptions{NoSpecialTokens: true})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(plain.IDs) != fmt.Sprint(e.Row(0)[1:e.Len(0)-1]) {
		t.Fatalf("NoSpecialTokens: %v vs %v", plain.IDs, e.Row(0))
	}
	// MaxLength cuts, [SEP] kept.
	cut, err := tok.Encode([]string{text}, electra.EncodeOptions{MaxLength: 5})
	if err != nil {
		t.Fatal(err)
	}
	if cut.SeqLen != 5 || cut.IDs[4] != 3 || fmt.Sprint(cut.IDs[:4]) != fmt.Sprint(e.IDs[:4]) {
		t.Fatalf("MaxLength 5: %v (full %v)", cut.IDs, e.Row(0))
	}
	dec, err := tok.Decode(e.Row(0), true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dec, "cafe naive 白 鲸 记") {
		t.Fatalf("Decode = %q", dec)
	}
	withSpecial, err := tok.Decode(e.Row(0), false)
	if err != nil || !strings.HasPrefix(withSpecial, "[CLS] cafe") || !strings.HasSuffix(withSpecial, "[SEP]") {
		t.Fatalf("Decode with specials = %q, %v", withSpecial, err)
	}
	// A long decode exceeds the first buffer guess.
	long := make([]int32, 0, 400)
	for len(long) < 400 {
		long = append(long, e.IDs[1:e.Len(0)-1]...)
	}
	if d, err := tok.Decode(long, true); err != nil || !strings.HasPrefix(d, dec) {
		t.Fatalf("long Decode: %v", err)
	}
	if id, err := tok.TokenToID("[MASK]"); err != nil || id != 4 {
		t.Fatalf("TokenToID([MASK]) = %d, %v", id, err)
	}
	if id, err := tok.TokenToID("no such token"); err != nil || id != -1 {
		t.Fatalf("TokenToID(absent) = %d, %v", id, err)
	}
	if id, err := tok.TokenToID(""); err != nil || id != -1 {
		t.Fatalf("TokenToID(\"\") = %d, %v", id, err)
	}
	if s, err := tok.IDToToken(4); err != nil || s != "[MASK]" {
		t.Fatalf("IDToToken(4) = %q, %v", s, err)
	}
	for _, id := range []int32{2999, 0} {
		s, err := tok.IDToToken(id)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := tok.TokenToID(s); err != nil || back != id {
			t.Fatalf("TokenToID(IDToToken(%d) = %q) = %d, %v", id, s, back, err)
		}
	}
	// Embedded NUL bytes are characters (dropped by the normalizer, as HF does).
	if e, err := tok.Encode([]string{"nul\x00char"}, electra.EncodeOptions{}); err != nil || e.Len(0) < 3 {
		t.Fatalf("NUL: %v, %v", e, err)
	}
	// Empty batches.
	if e, err := tok.Encode(nil, electra.EncodeOptions{}); err != nil || e.Batch != 0 {
		t.Fatalf("Encode(nil) = %+v, %v", e, err)
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func TestTokenizerErrors(t *testing.T) {
	tok := mustTokenizer(t, tokFixture("vocab.txt"))
	_, err := tok.Encode([]string{"fine", "bad \xff byte"}, electra.EncodeOptions{})
	wantErr(t, "invalid UTF-8", err, electra.StatusInvalidArgument, "UTF-8")
	_, err = tok.EncodePairs([]string{"a"}, []string{"\xc3"}, electra.EncodeOptions{})
	wantErr(t, "invalid UTF-8 in a pair", err, electra.StatusInvalidArgument, "UTF-8")
	_, err = tok.EncodePairs([]string{"a", "b"}, []string{"c"}, electra.EncodeOptions{})
	wantErr(t, "pair counts", err, electra.StatusShape)
	_, err = tok.Encode([]string{"a"}, electra.EncodeOptions{MaxLength: -1})
	wantErr(t, "negative MaxLength", err, electra.StatusInvalidArgument)
	_, err = tok.Decode([]int32{2, 3000}, false)
	wantErr(t, "decode outside the vocabulary", err, electra.StatusInvalidArgument)
	_, err = tok.IDToToken(-1)
	wantErr(t, "IDToToken(-1)", err, electra.StatusInvalidArgument)
	if id, err := tok.TokenToID("\xff"); err != nil && !isStatus(err, electra.StatusInvalidArgument) || err == nil && id != -1 {
		t.Fatalf("TokenToID(invalid UTF-8) = %d, %v", id, err)
	}

	_, err = electra.LoadTokenizer(filepath.Join(t.TempDir(), "missing.json"))
	wantErr(t, "missing file", err, electra.StatusIO)
	_, err = electra.LoadTokenizerFromMemory([]byte("{}"))
	wantErr(t, "not a tokenizer", err, electra.StatusFormat)
	_, err = electra.LoadTokenizerFromMemory(nil)
	wantErr(t, "empty tokenizer.json", err, electra.StatusFormat)

	tok.Close()
	tok.Close()
	_, err = tok.Encode([]string{"a"}, electra.EncodeOptions{})
	wantErr(t, "closed tokenizer", err, electra.StatusInvalidHandle, "closed")
	_, err = tok.Info()
	wantErr(t, "closed tokenizer info", err, electra.StatusInvalidHandle)
	_, err = tok.Decode([]int32{2}, true)
	wantErr(t, "closed tokenizer decode", err, electra.StatusInvalidHandle)
}

func isStatus(err error, code electra.Status) bool {
	e, ok := err.(*electra.Error)
	return ok && e.Code == code
}

// --- session calls on text -------------------------------------------------------------------

func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / math.Sqrt(aa*bb)
}

func TestEmbedTextsBatchedEqualsOneAtATime(t *testing.T) {
	m, s := textSession(t, textDirsFor(t).pair)
	info, _ := m.Info()
	if info.MaxPositionEmbeddings >= 200 {
		t.Fatalf("the test model has %d positions; the long text must exceed them", info.MaxPositionEmbeddings)
	}
	for _, pooling := range []electra.Pooling{electra.PoolingMean, electra.PoolingCLS} {
		for _, bs := range []int{0, 1, 3} {
			opts := electra.TextOptions{Pooling: pooling, BatchSize: bs}
			all, err := s.EmbedTexts(sampleTexts, opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != len(sampleTexts) {
				t.Fatalf("%d rows", len(all))
			}
			for i, text := range sampleTexts {
				one, err := s.EmbedTexts([]string{text}, opts)
				if err != nil {
					t.Fatal(err)
				}
				if len(all[i]) != info.HiddenSize {
					t.Fatalf("row of %d floats, want %d", len(all[i]), info.HiddenSize)
				}
				if d := maxAbsDiff(all[i], one[0]); d > 1e-6 {
					t.Fatalf("pooling %d batch %d text %d: batched differs from alone by %g", pooling, bs, i, d)
				}
			}
		}
	}
}

// The embedding is the mean of HiddenStates over the text's tokens, as Encode tokenizes it.
func TestEmbedTextsEqualsHiddenStatesPooled(t *testing.T) {
	m, s := textSession(t, textDirsFor(t).pair)
	tok, err := m.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	texts := sampleTexts[:5]
	e, err := tok.Encode(texts, electra.EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hs, err := s.HiddenStates(e.IDs, e.AttentionMask, e.TokenTypeIDs, e.Batch, e.SeqLen)
	if err != nil {
		t.Fatal(err)
	}
	mean, err := s.EmbedTexts(texts, electra.TextOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cls, err := s.EmbedTexts(texts, electra.TextOptions{Pooling: electra.PoolingCLS})
	if err != nil {
		t.Fatal(err)
	}
	h := s.Info().HiddenSize
	for i := range texts {
		want := make([]float32, h)
		n := e.Len(i)
		for j := 0; j < n; j++ {
			for k := 0; k < h; k++ {
				want[k] += hs[(i*e.SeqLen+j)*h+k] / float32(n)
			}
		}
		// A padded batch against each text alone: equal to rounding.
		if d := maxAbsDiff(mean[i], want); d > 1e-4 {
			t.Fatalf("text %d: mean pooling differs from HiddenStates by %g", i, d)
		}
		if d := maxAbsDiff(cls[i], hs[i*e.SeqLen*h:i*e.SeqLen*h+h]); d > 1e-4 {
			t.Fatalf("text %d: CLS pooling differs from HiddenStates by %g", i, d)
		}
	}
}

func TestEmbedTextsNormalizedCosine(t *testing.T) {
	_, s := textSession(t, textDirsFor(t).pair)
	sentences := []string{"The cat sat on the mat.", "A cat was sitting on a mat.", "Stock markets fell sharply today."}
	raw, err := s.EmbedTexts(sentences, electra.TextOptions{})
	if err != nil {
		t.Fatal(err)
	}
	unit, err := s.EmbedTexts(sentences, electra.TextOptions{Normalize: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range unit {
		if n := math.Sqrt(cosineDot(unit[i], unit[i])); math.Abs(n-1) > 1e-5 {
			t.Fatalf("row %d has norm %v", i, n)
		}
	}
	for i := 0; i < 3; i++ {
		for j := 0; j < 3; j++ {
			c := cosine(raw[i], raw[j])
			if math.Abs(c-cosineDot(unit[i], unit[j])) > 1e-5 || c < -1-1e-6 || c > 1+1e-6 {
				t.Fatalf("cosine(%d, %d) = %v, dot of unit rows %v", i, j, c, cosineDot(unit[i], unit[j]))
			}
			if i == j && math.Abs(c-1) > 1e-5 {
				t.Fatalf("cosine(%d, %d) = %v", i, i, c)
			}
		}
	}
	t.Logf("cosine: %.4f %.4f %.4f", cosine(raw[0], raw[1]), cosine(raw[0], raw[2]), cosine(raw[1], raw[2]))
}

func cosineDot(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d += float64(a[i]) * float64(b[i])
	}
	return d
}

func TestClassifyTextsWithLabelNames(t *testing.T) {
	dirs := textDirsFor(t)
	m, s := textSession(t, dirs.cls)
	labels, err := m.Labels()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(labels) != "[sad neutral happy]" || fmt.Sprint(s.Labels()) != "[sad neutral happy]" {
		t.Fatalf("Labels() = %v, session %v", labels, s.Labels())
	}
	res, err := s.ClassifyTexts(sampleTexts, electra.TextOptions{BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		sum := float32(0)
		for j, p := range r.Probabilities {
			sum += p
			if p < 0 || p > 1 || p > r.Probabilities[r.LabelID] {
				t.Fatalf("text %d: %+v", i, r)
			}
			_ = j
		}
		if math.Abs(float64(sum)-1) > 1e-5 || r.Label != labels[r.LabelID] || len(r.Probabilities) != 3 {
			t.Fatalf("text %d: %+v", i, r)
		}
		one, err := s.ClassifyTexts([]string{sampleTexts[i]}, electra.TextOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if d := maxAbsDiff(one[0].Probabilities, r.Probabilities); d > 1e-6 {
			t.Fatalf("text %d: batched differs from alone by %g", i, d)
		}
	}
	pairs, err := s.ClassifyTextPairs([]string{"Is it raining?", "café"}, []string{"Yes, it pours.", "白鲸"}, electra.TextOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pairs) != 2 || len(pairs[1].Probabilities) != 3 {
		t.Fatalf("pairs: %+v", pairs)
	}
	single, err := s.ClassifyTexts([]string{"Is it raining?"}, electra.TextOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if maxAbsDiff(single[0].Probabilities, pairs[0].Probabilities) == 0 {
		t.Fatal("a pair classified as its first text alone")
	}
	_, err = s.ClassifyTextPairs([]string{"a"}, nil, electra.TextOptions{})
	wantErr(t, "pair counts", err, electra.StatusShape)

	// A model without a classification head.
	pm, ps := textSession(t, dirs.pair)
	_, err = ps.ClassifyTexts([]string{"a"}, electra.TextOptions{})
	wantErr(t, "classify without a head", err, electra.StatusUnsupported)
	_, err = pm.Labels()
	wantErr(t, "labels without a head", err, electra.StatusUnsupported)
	if ps.Labels() != nil {
		t.Fatalf("session labels without a head: %v", ps.Labels())
	}
}

func TestDetectTextSpansAreTheWords(t *testing.T) {
	_, s := textSession(t, textDirsFor(t).pair)
	text := "the quick  brown fox\tjumps over the lazy dog"
	words, err := s.DetectText(text, electra.TextOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(text)
	if len(words) != len(fields) {
		t.Fatalf("%d words, want %d: %+v", len(words), len(fields), words)
	}
	for i, w := range words {
		if w.Word != fields[i] || text[w.Start:w.End] != w.Word || !(w.Score >= 0 && w.Score <= 1) {
			t.Fatalf("word %d: %+v, want %q", i, w, fields[i])
		}
	}
	text = "Café, naïve! 白鲸 🐋"
	words, err = s.DetectText(text, electra.TextOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(words))
	for i, w := range words {
		got[i] = w.Word
		if text[w.Start:w.End] != w.Word {
			t.Fatalf("word %d: %+v", i, w)
		}
	}
	if strings.Join(got, "|") != "Café|,|naïve|!|白|鲸|🐋" {
		t.Fatalf("words %q", got)
	}
	// Longer than the model's positions: cut, the words past it unscored.
	long := strings.Repeat("whale ", 300)
	words, err = s.DetectText(long, electra.TextOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(words) == 0 || len(words) > 300 || words[len(words)-1].End > len(long) {
		t.Fatalf("long text: %d words", len(words))
	}
	if words, err = s.DetectText("", electra.TextOptions{}); err != nil || len(words) != 0 {
		t.Fatalf("empty text: %v, %v", words, err)
	}
}

func TestFillMask(t *testing.T) {
	m, s := textSession(t, textDirsFor(t).pair)
	tok, err := m.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	res, err := s.FillMask("the [MASK] sat on the [MASK] .", 5, electra.TextOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 {
		t.Fatalf("%d masks", len(res))
	}
	for i, cands := range res {
		if len(cands) != 5 {
			t.Fatalf("mask %d: %d candidates", i, len(cands))
		}
		for j, c := range cands {
			name, err := tok.IDToToken(c.ID)
			if err != nil {
				t.Fatal(err)
			}
			if c.Token != name || c.Score < 0 || c.Score > 1 || j > 0 && c.Score > cands[j-1].Score {
				t.Fatalf("mask %d candidate %d: %+v (%q)", i, j, c, name)
			}
		}
	}
	// The same with the tokenizer passed explicitly, and a topK past the vocabulary cut to it.
	again, err := s.FillMask("the [MASK] sat on the [MASK] .", 5, electra.TextOptions{Tokenizer: tok})
	if err != nil || fmt.Sprint(again) != fmt.Sprint(res) {
		t.Fatalf("explicit tokenizer: %v", err)
	}
	all, err := s.FillMask("[MASK]", 5000, electra.TextOptions{})
	if err != nil || len(all) != 1 || len(all[0]) != 3000 {
		t.Fatalf("topK past the vocabulary: %d, %v", len(all), err)
	}
	_, err = s.FillMask("no mask here", 3, electra.TextOptions{})
	wantErr(t, "no mask", err, electra.StatusInvalidArgument)
	_, err = s.FillMask("[MASK]", 0, electra.TextOptions{})
	wantErr(t, "topK 0", err, electra.StatusInvalidArgument)
}

func TestTextCallErrors(t *testing.T) {
	dirs := textDirsFor(t)
	m, s := textSession(t, dirs.pair)
	info, _ := m.Info()
	_, err := s.EmbedTexts([]string{"ok", "not \xe2\x82 UTF-8"}, electra.TextOptions{})
	wantErr(t, "embed invalid UTF-8", err, electra.StatusInvalidArgument, "UTF-8")
	_, err = s.DetectText("\xff", electra.TextOptions{})
	wantErr(t, "detect invalid UTF-8", err, electra.StatusInvalidArgument, "UTF-8")
	_, err = s.FillMask("[MASK] \xff", 2, electra.TextOptions{})
	wantErr(t, "fill-mask invalid UTF-8", err, electra.StatusInvalidArgument, "UTF-8")
	_, err = s.EmbedTexts([]string{"a"}, electra.TextOptions{MaxLength: info.MaxPositionEmbeddings + 1})
	wantErr(t, "MaxLength past the positions", err, electra.StatusInvalidArgument)
	_, err = s.EmbedTexts([]string{"a"}, electra.TextOptions{BatchSize: -1})
	wantErr(t, "negative BatchSize", err, electra.StatusInvalidArgument)

	// Texts longer than the positions are cut: as if MaxLength were the positions.
	long := []string{strings.Repeat("whale ", 200)}
	a, err := s.EmbedTexts(long, electra.TextOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.EmbedTexts(long, electra.TextOptions{MaxLength: info.MaxPositionEmbeddings})
	if err != nil || maxAbsDiff(a[0], b[0]) != 0 {
		t.Fatalf("long text: %v", err)
	}
	c, err := s.EmbedTexts(long, electra.TextOptions{MaxLength: 8})
	if err != nil || maxAbsDiff(a[0], c[0]) == 0 {
		t.Fatalf("MaxLength 8 changes nothing: %v", err)
	}

	// A closed tokenizer passed in, a closed session.
	tok := mustTokenizer(t, tokFixture("vocab.txt"))
	tok.Close()
	_, err = s.EmbedTexts([]string{"a"}, electra.TextOptions{Tokenizer: tok})
	wantErr(t, "closed tokenizer", err, electra.StatusInvalidHandle, "closed")
	s.Close()
	_, err = s.EmbedTexts([]string{"a"}, electra.TextOptions{})
	wantErr(t, "closed session", err, electra.StatusInvalidHandle, "closed")
	_, err = s.DetectText("a", electra.TextOptions{})
	wantErr(t, "closed session detect", err, electra.StatusInvalidHandle, "closed")

	// A model without a tokenizer: Unsupported until one is passed.
	bm, bs := textSession(t, dirs.bare)
	_, err = bm.Tokenizer()
	wantErr(t, "model without a tokenizer", err, electra.StatusUnsupported)
	_, err = bs.EmbedTexts([]string{"a"}, electra.TextOptions{})
	wantErr(t, "embed without a tokenizer", err, electra.StatusUnsupported)
	own := mustTokenizer(t, tokFixture("vocab.txt"))
	if _, err := bs.EmbedTexts([]string{"a"}, electra.TextOptions{Tokenizer: own}); err != nil {
		t.Fatal(err)
	}
	m.Close()
	_, err = m.Tokenizer()
	wantErr(t, "closed model", err, electra.StatusInvalidHandle)
}

func TestLoadModelFromMemory(t *testing.T) {
	dirs := textDirsFor(t)
	disc := filepath.Join(dirs.pair, "discriminator")
	config, err := os.ReadFile(filepath.Join(disc, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	weights, err := os.ReadFile(filepath.Join(disc, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := electra.LoadModelFromMemory(config, weights, "")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	_, err = m.Tokenizer()
	wantErr(t, "memory model's tokenizer", err, electra.StatusUnsupported)
	s, err := electra.NewSessionWithOptions(m, electra.SessionOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tok := mustTokenizer(t, disc)
	got, err := s.EmbedTexts(sampleTexts, electra.TextOptions{Tokenizer: tok})
	if err != nil {
		t.Fatal(err)
	}
	_, fs := textSession(t, dirs.pair)
	want, err := fs.EmbedTexts(sampleTexts, electra.TextOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if d := maxAbsDiff(got[i], want[i]); d > 1e-6 {
			t.Fatalf("text %d: from memory differs from the directory by %g", i, d)
		}
	}
	q, err := electra.LoadModelFromMemory(config, weights, electra.LoadOptions{Quantize: "int8"})
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := q.Info(); !info.Int8 {
		t.Fatalf("quantize option ignored: %+v", info)
	}
	q.Close()
	_, err = electra.LoadModelFromMemory(config, weights[:len(weights)/2], nil)
	wantErr(t, "truncated weights", err, electra.StatusFormat)
	_, err = electra.LoadModelFromMemory(nil, weights, nil)
	wantErr(t, "empty config", err, electra.StatusFormat)
	_, err = electra.LoadModelFromMemory(config, weights, `{"nope": 1}`)
	wantErr(t, "unknown option", err, electra.StatusInvalidArgument)
}

func TestTextCallsFromManyGoroutines(t *testing.T) {
	dirs := textDirsFor(t)
	m := mustLoad(t, dirs.pair)
	tok, err := m.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	_, s0 := textSession(t, dirs.pair)
	want, err := s0.EmbedTexts(sampleTexts, electra.TextOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			s, err := electra.NewSessionWithOptions(m, electra.SessionOptions{Threads: 1})
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			for k := 0; k < 3; k++ {
				got, err := s.EmbedTexts(sampleTexts, electra.TextOptions{Tokenizer: tok, BatchSize: g + 1})
				if err != nil {
					errs <- err
					return
				}
				for i := range want {
					if d := maxAbsDiff(got[i], want[i]); d > 1e-6 {
						errs <- fmt.Errorf("goroutine %d text %d: off by %g", g, i, d)
						return
					}
				}
				if _, err := tok.Encode(sampleTexts, electra.EncodeOptions{}); err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
