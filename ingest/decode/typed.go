package decode

import (
	"math"

	jimbotpb "github.com/jimbot/jimbus/proto"
)

// The typed view: a best-effort decoding of payload_json into the event's
// oneof. It walks bytes the strict scanner already accepted, never fails
// and never rejects an event: a value of the wrong JSON type is ignored, a
// number that does not fit its field is saturated, a numeric string counts
// as a number (Q7), {} counts as an empty list (Q6), and a list written as
// an object (Q11) is read through its values.

// typed sets ev's typed oneof view from the payload at buf[s:e].
func (p *parser) typed(ev *jimbotpb.Event, s, e int, initial, debug bool) {
	if s >= e || p.buf[s] != '{' {
		return
	}
	c := &p.st.typed
	switch ev.Type {
	case jimbotpb.EventType_EVENT_TYPE_GAME_STATE:
		v := c.gameState.get()
		p.gameState(v, s, initial, debug)
		v.w.GameState = &v.m
		ev.Payload = &v.w
	case jimbotpb.EventType_EVENT_TYPE_HEARTBEAT:
		v := c.heartbeat.get()
		m := &v.m
		*m = jimbotpb.HeartbeatEvent{}
		for it, _ := newObjIter(p.buf, s); ; {
			ks, ke, vs, ve, ok := it.next()
			if !ok {
				break
			}
			switch p.key(&it, ks, ke) {
			case "version":
				m.Version = p.text(vs, ve)
			case "uptime":
				m.Uptime = p.i64(vs, ve)
			case "headless":
				m.Headless = p.boolean(vs, ve)
			case "game_state":
				m.GameState = p.text(vs, ve)
			}
		}
		v.w.Heartbeat = m
		ev.Payload = &v.w
	case jimbotpb.EventType_EVENT_TYPE_MONEY_CHANGED:
		v := c.money.get()
		m := &v.m
		*m = jimbotpb.MoneyChangedEvent{}
		for it, _ := newObjIter(p.buf, s); ; {
			ks, ke, vs, ve, ok := it.next()
			if !ok {
				break
			}
			switch p.key(&it, ks, ke) {
			case "old_value":
				m.OldValue = p.i32(vs, ve)
			case "new_value":
				m.NewValue = p.i32(vs, ve)
			case "difference":
				m.Difference = p.i32(vs, ve)
			}
		}
		v.w.MoneyChanged = m
		ev.Payload = &v.w
	case jimbotpb.EventType_EVENT_TYPE_SCORE_CHANGED:
		v := c.score.get()
		m := &v.m
		*m = jimbotpb.ScoreChangedEvent{}
		for it, _ := newObjIter(p.buf, s); ; {
			ks, ke, vs, ve, ok := it.next()
			if !ok {
				break
			}
			switch p.key(&it, ks, ke) {
			case "old_chips":
				m.OldChips = p.i64(vs, ve)
			case "new_chips":
				m.NewChips = p.i64(vs, ve)
			case "old_mult":
				m.OldMult = p.f64(vs, ve)
			case "new_mult":
				m.NewMult = p.f64(vs, ve)
			}
		}
		v.w.ScoreChanged = m
		ev.Payload = &v.w
	case jimbotpb.EventType_EVENT_TYPE_HAND_PLAYED:
		v := c.handPlayed.get()
		m := &v.m
		*m = jimbotpb.HandPlayedEvent{}
		for it, _ := newObjIter(p.buf, s); ; {
			ks, ke, vs, ve, ok := it.next()
			if !ok {
				break
			}
			switch p.key(&it, ks, ke) {
			case "hands_remaining":
				m.HandsRemaining = p.i32(vs, ve)
			case "hand_number":
				m.HandNumber = p.i32(vs, ve)
			}
		}
		v.w.HandPlayed = m
		ev.Payload = &v.w
	case jimbotpb.EventType_EVENT_TYPE_CARDS_DISCARDED:
		v := c.discard.get()
		m := &v.m
		*m = jimbotpb.CardsDiscardedEvent{}
		for it, _ := newObjIter(p.buf, s); ; {
			ks, ke, vs, ve, ok := it.next()
			if !ok {
				break
			}
			if p.key(&it, ks, ke) == "discards_remaining" {
				m.DiscardsRemaining = p.i32(vs, ve)
			}
		}
		v.w.CardsDiscarded = m
		ev.Payload = &v.w
	case jimbotpb.EventType_EVENT_TYPE_JOKERS_CHANGED:
		v := c.jokersChanged.get()
		m := &v.m
		*m = jimbotpb.JokersChangedEvent{}
		for it, _ := newObjIter(p.buf, s); ; {
			ks, ke, vs, ve, ok := it.next()
			if !ok {
				break
			}
			switch p.key(&it, ks, ke) {
			case "old_count":
				m.OldCount = p.i32(vs, ve)
			case "new_count":
				m.NewCount = p.i32(vs, ve)
			case "jokers":
				if ve < 0 {
					v.jokers, ve = p.jokers(v.jokers[:0], vs)
					it.skipTo(ve)
					m.Jokers = v.jokers
				}
			}
		}
		v.w.JokersChanged = m
		ev.Payload = &v.w
	case jimbotpb.EventType_EVENT_TYPE_ROUND_CHANGED:
		v := c.round.get()
		m := &v.m
		*m = jimbotpb.RoundChangedEvent{}
		for it, _ := newObjIter(p.buf, s); ; {
			ks, ke, vs, ve, ok := it.next()
			if !ok {
				break
			}
			switch p.key(&it, ks, ke) {
			case "ante":
				m.Ante = p.i32(vs, ve)
			case "round":
				m.Round = p.i32(vs, ve)
			}
		}
		v.w.RoundChanged = m
		ev.Payload = &v.w
	case jimbotpb.EventType_EVENT_TYPE_PHASE_CHANGED:
		v := c.phase.get()
		m := &v.m
		*m = jimbotpb.PhaseChangedEvent{}
		for it, _ := newObjIter(p.buf, s); ; {
			ks, ke, vs, ve, ok := it.next()
			if !ok {
				break
			}
			switch p.key(&it, ks, ke) {
			case "old_phase":
				m.OldPhase = p.text(vs, ve)
			case "new_phase":
				m.NewPhase = p.text(vs, ve)
			}
		}
		v.w.PhaseChanged = m
		ev.Payload = &v.w
	case jimbotpb.EventType_EVENT_TYPE_ROUND_COMPLETE:
		v := c.roundComplete.get()
		m := &v.m
		*m = jimbotpb.RoundCompleteEvent{}
		for it, _ := newObjIter(p.buf, s); ; {
			ks, ke, vs, ve, ok := it.next()
			if !ok {
				break
			}
			switch p.key(&it, ks, ke) {
			case "ante":
				m.Ante = p.i32(vs, ve)
			case "round":
				m.Round = p.i32(vs, ve)
			case "score":
				m.Score = p.i64(vs, ve)
			case "money":
				m.Money = p.i32(vs, ve)
			}
		}
		v.w.RoundComplete = m
		ev.Payload = &v.w
	case jimbotpb.EventType_EVENT_TYPE_CONNECTION_TEST:
		v := c.connTest.get()
		m := &v.m
		*m = jimbotpb.ConnectionTestEvent{}
		for it, _ := newObjIter(p.buf, s); ; {
			ks, ke, vs, ve, ok := it.next()
			if !ok {
				break
			}
			if p.key(&it, ks, ke) == "message" {
				m.Message = p.text(vs, ve)
			}
		}
		v.w.ConnectionTest = m
		ev.Payload = &v.w
	case jimbotpb.EventType_EVENT_TYPE_JOKER_TRIGGERED:
		v := c.jokerTrig.get()
		m := &v.m
		*m = jimbotpb.JokerTriggeredEvent{}
		for it, _ := newObjIter(p.buf, s); ; {
			ks, ke, vs, ve, ok := it.next()
			if !ok {
				break
			}
			switch p.key(&it, ks, ke) {
			case "joker_name":
				m.JokerName = p.text(vs, ve)
			case "context_type": // true or "unknown" (Q13)
				m.ContextType = p.text(vs, ve)
			}
		}
		v.w.JokerTriggered = m
		ev.Payload = &v.w
	case jimbotpb.EventType_EVENT_TYPE_ERROR:
		v := c.errors.get()
		m := &v.m
		*m = jimbotpb.ErrorEvent{}
		for it, _ := newObjIter(p.buf, s); ; {
			ks, ke, vs, ve, ok := it.next()
			if !ok {
				break
			}
			switch p.key(&it, ks, ke) {
			case "message":
				m.Message = p.text(vs, ve)
			case "stack_trace":
				m.StackTrace = p.text(vs, ve)
			}
		}
		v.w.Error = m
		ev.Payload = &v.w
	case jimbotpb.EventType_EVENT_TYPE_LEARNING_DECISION_REQUEST:
		v := c.ldReq.get()
		m := &v.m
		*m = jimbotpb.LearningDecisionRequest{}
		for it, _ := newObjIter(p.buf, s); ; {
			ks, ke, vs, ve, ok := it.next()
			if !ok {
				break
			}
			switch p.key(&it, ks, ke) {
			case "request_id":
				m.RequestId = p.text(vs, ve)
			case "time_limit_ms":
				m.TimeLimitMs = p.i32(vs, ve)
			case "available_actions":
				if ve >= 0 {
					break
				}
				v.actions = v.actions[:0]
				el := p.elems(vs)
				for {
					es, ee, ok := el.next()
					if !ok {
						break
					}
					v.actions = append(v.actions, p.text(es, ee))
				}
				it.skipTo(el.end())
				m.AvailableActions = v.actions
			}
		}
		v.w.LearningDecisionRequest = m
		ev.Payload = &v.w
	case jimbotpb.EventType_EVENT_TYPE_LEARNING_DECISION_RESPONSE:
		v := c.ldResp.get()
		m := &v.m
		*m = jimbotpb.LearningDecisionResponse{}
		for it, _ := newObjIter(p.buf, s); ; {
			ks, ke, vs, ve, ok := it.next()
			if !ok {
				break
			}
			switch p.key(&it, ks, ke) {
			case "request_id":
				m.RequestId = p.text(vs, ve)
			case "selected_action":
				m.SelectedAction = p.text(vs, ve)
			case "confidence":
				m.Confidence = p.f64(vs, ve)
			}
		}
		v.w.LearningDecisionResponse = m
		ev.Payload = &v.w
	}
}

// gameState fills v from the GAME_STATE payload at buf[s].
func (p *parser) gameState(v *gameStateView, s int, initial, debug bool) {
	m := &v.m
	m.Reset()
	m.Initial = initial
	m.Debug = debug
	for it, _ := newObjIter(p.buf, s); ; {
		ks, ke, vs, ve, ok := it.next()
		if !ok {
			break
		}
		switch p.key(&it, ks, ke) {
		case "in_game":
			m.InGame = p.boolean(vs, ve)
		case "game_id":
			m.GameId = p.text(vs, ve)
		case "ante":
			m.Ante = p.i32(vs, ve)
		case "round":
			m.Round = p.i32(vs, ve)
		case "hand_number":
			m.HandNumber = p.i32(vs, ve)
		case "chips":
			m.Chips = p.f64(vs, ve)
		case "mult":
			m.Mult = p.f64(vs, ve)
		case "money":
			m.Money = p.f64(vs, ve)
		case "hand_size":
			m.HandSize = p.i32(vs, ve)
		case "hands_remaining":
			m.HandsRemaining = p.i32(vs, ve)
		case "discards_remaining":
			m.DiscardsRemaining = p.i32(vs, ve)
		case "frame_count":
			m.FrameCount = p.i32(vs, ve)
		case "ui_state":
			m.UiState = p.text(vs, ve)
		case "game_state", "phase": // "phase" in the degenerate menu payload
			m.PhaseName = p.text(vs, ve)
			m.GameState = phaseOf(m.PhaseName)
		}
		if ve >= 0 {
			continue // a scalar where a list or object belongs: ignored
		}
		switch p.key(&it, ks, ke) {
		case "jokers":
			v.jokers, ve = p.jokers(v.jokers[:0], vs)
			m.Jokers = v.jokers
		case "hand":
			v.hand, ve = p.cards(v.hand[:0], vs)
			m.Hand = v.hand
		case "consumables":
			v.consumables, ve = p.consumables(v.consumables[:0], vs)
			m.Consumables = v.consumables
		case "deck":
			ve = p.deck(v, vs)
			m.Deck = &v.deck
		case "blind":
			if p.buf[vs] == '{' {
				ve = p.blind(&v.blind, vs)
				m.Blind = &v.blind
			}
		case "score_history":
			if v.scores == nil {
				v.scores = make(map[string]*jimbotpb.ScoreHistory, 16)
			}
			clear(v.scores)
			ve = p.scoreHistory(v.scores, vs)
			if len(v.scores) > 0 {
				m.ScoreHistory = v.scores
			}
		case "shop_items":
			if v.shop == nil {
				v.shop = make(map[string]*jimbotpb.ShopItem, 8)
			}
			clear(v.shop)
			ve = p.shopItems(v.shop, vs)
			if len(v.shop) > 0 {
				m.ShopItems = v.shop
			}
		}
		if ve >= 0 {
			it.skipTo(ve)
		}
	}
}

// scoreHistory fills dst from the object at buf[s] and returns its end.
func (p *parser) scoreHistory(dst map[string]*jimbotpb.ScoreHistory, s int) int {
	it, _ := newObjIter(p.buf, s)
	for {
		ks, ke, es, ee, ok := it.next()
		if !ok {
			return it.end()
		}
		if ee >= 0 {
			continue
		}
		h := p.st.typed.scoreHist.get()
		*h = jimbotpb.ScoreHistory{}
		it2, _ := newObjIter(p.buf, es)
		for {
			ks2, ke2, vs2, ve2, ok := it2.next()
			if !ok {
				break
			}
			switch p.key(&it2, ks2, ke2) {
			case "label":
				h.Label = p.text(vs2, ve2)
			case "amt":
				h.Amt = p.f64(vs2, ve2)
			}
		}
		if p.buf[es] == '{' {
			it.skipTo(it2.end())
		}
		dst[p.str(ks, ke)] = h
	}
}

// shopItems fills dst from the object at buf[s] and returns its end.
func (p *parser) shopItems(dst map[string]*jimbotpb.ShopItem, s int) int {
	it, _ := newObjIter(p.buf, s)
	for {
		ks, ke, es, ee, ok := it.next()
		if !ok {
			return it.end()
		}
		if ee >= 0 {
			continue
		}
		item := p.st.typed.shopItems.get()
		*item = jimbotpb.ShopItem{}
		it2, _ := newObjIter(p.buf, es)
		for {
			ks2, ke2, vs2, ve2, ok := it2.next()
			if !ok {
				break
			}
			switch p.key(&it2, ks2, ke2) {
			case "name":
				item.Name = p.text(vs2, ve2)
			case "cost":
				item.Cost = p.f64(vs2, ve2)
			case "rarity": // 1-4 or "common"
				item.Rarity = p.text(vs2, ve2)
			}
		}
		if p.buf[es] == '{' {
			it.skipTo(it2.end())
		}
		dst[p.str(ks, ke)] = item
	}
}

// deck fills v.deck from the object at buf[s] and returns its end.
func (p *parser) deck(v *gameStateView, s int) int {
	d := &v.deck
	d.Reset()
	it, _ := newObjIter(p.buf, s)
	for {
		ks, ke, vs, ve, ok := it.next()
		if !ok {
			return it.end()
		}
		switch p.key(&it, ks, ke) {
		case "remaining_count":
			d.RemainingCount = p.i32(vs, ve)
		case "cards_remaining":
			if ve < 0 {
				v.remaining, ve = p.cards(v.remaining[:0], vs)
				it.skipTo(ve)
				d.CardsRemaining = v.remaining
			}
		case "full_deck":
			if ve < 0 {
				v.fullDeck, ve = p.cards(v.fullDeck[:0], vs)
				it.skipTo(ve)
				d.FullDeck = v.fullDeck
			}
		}
	}
}

// blind fills b from the object at buf[s] and returns its end.
func (p *parser) blind(b *jimbotpb.Blind, s int) int {
	b.Reset()
	it, _ := newObjIter(p.buf, s)
	for {
		ks, ke, vs, ve, ok := it.next()
		if !ok {
			return it.end()
		}
		switch p.key(&it, ks, ke) {
		case "name":
			b.Name = p.text(vs, ve)
		case "chips":
			b.Chips = p.i32(vs, ve)
		case "chip_text":
			b.ChipText = p.text(vs, ve)
		case "mult":
			b.Mult = f32(p.f64(vs, ve))
		case "defeated":
			b.Defeated = p.boolean(vs, ve)
		case "boss":
			b.Boss = p.boolean(vs, ve)
		}
	}
}

// cards appends the cards of the list (or object, Q6/Q11) at buf[s].
func (p *parser) cards(dst []*jimbotpb.Card, s int) ([]*jimbotpb.Card, int) {
	el := p.elems(s)
	for {
		es, _, ok := el.next()
		if !ok {
			return dst, el.end()
		}
		if p.buf[es] != '{' {
			continue
		}
		c := p.st.typed.cards.get()
		// The zero value, as new(T) gives: the message state is set lazily
		// (cheaper than Reset's atomic store, for 60 cards a GAME_STATE).
		*c = jimbotpb.Card{}
		it, _ := newObjIter(p.buf, es)
		for {
			ks, ke, vs, ve, ok := it.next()
			if !ok {
				break
			}
			switch p.key(&it, ks, ke) {
			case "id": // a float such as 0.99989895846132, kept as printed
				c.Id = p.text(vs, ve)
			case "rank":
				c.Rank = rankOf(p.text(vs, ve))
			case "suit":
				c.Suit = suitOf(p.text(vs, ve))
			case "enhancement":
				c.Enhancement = p.text(vs, ve)
			case "edition":
				c.Edition = p.text(vs, ve)
			case "seal":
				c.Seal = p.text(vs, ve)
			case "position":
				c.Position = p.i32(vs, ve)
			}
		}
		el.skipTo(it.end())
		dst = append(dst, c)
	}
}

func (p *parser) jokers(dst []*jimbotpb.Joker, s int) ([]*jimbotpb.Joker, int) {
	el := p.elems(s)
	for {
		es, _, ok := el.next()
		if !ok {
			return dst, el.end()
		}
		if p.buf[es] != '{' {
			continue
		}
		v := p.st.typed.jokers.get()
		j := &v.j
		*j = jimbotpb.Joker{}
		it, _ := newObjIter(p.buf, es)
		for {
			ks, ke, vs, ve, ok := it.next()
			if !ok {
				break
			}
			switch p.key(&it, ks, ke) {
			case "id":
				j.Id = p.text(vs, ve)
			case "name":
				j.Name = p.text(vs, ve)
			case "position":
				j.Position = p.i32(vs, ve)
			case "properties":
				if p.buf[vs] != '{' {
					break
				}
				pr := &v.p
				*pr = jimbotpb.JokerProperties{}
				it2, _ := newObjIter(p.buf, vs)
				for {
					ks2, ke2, vs2, ve2, ok := it2.next()
					if !ok {
						break
					}
					switch p.key(&it2, ks2, ke2) {
					case "mult":
						pr.Mult = p.f64(vs2, ve2)
					case "chips":
						pr.Chips = p.f64(vs2, ve2)
					case "cost":
						pr.Cost = p.f64(vs2, ve2)
					case "sell_value":
						pr.SellValue = p.f64(vs2, ve2)
					case "edition":
						pr.Edition = p.text(vs2, ve2)
					}
				}
				it.skipTo(it2.end())
				j.Properties = pr
			}
		}
		el.skipTo(it.end())
		dst = append(dst, j)
	}
}

func (p *parser) consumables(dst []*jimbotpb.Consumable, s int) ([]*jimbotpb.Consumable, int) {
	el := p.elems(s)
	for {
		es, _, ok := el.next()
		if !ok {
			return dst, el.end()
		}
		if p.buf[es] != '{' {
			continue
		}
		v := p.st.typed.consumables.get()
		c := &v.c
		*c = jimbotpb.Consumable{}
		it, _ := newObjIter(p.buf, es)
		for {
			ks, ke, vs, ve, ok := it.next()
			if !ok {
				break
			}
			switch p.key(&it, ks, ke) {
			case "id":
				c.Id = p.text(vs, ve)
			case "name":
				c.Name = p.text(vs, ve)
			case "card_type":
				c.CardType = p.text(vs, ve)
			case "position":
				c.Position = p.i32(vs, ve)
			case "properties":
				if p.buf[vs] != '{' {
					break
				}
				pr := &v.p
				*pr = jimbotpb.ConsumableProperties{}
				it2, _ := newObjIter(p.buf, vs)
				for {
					ks2, ke2, vs2, ve2, ok := it2.next()
					if !ok {
						break
					}
					switch p.key(&it2, ks2, ke2) {
					case "cost":
						pr.Cost = p.f64(vs2, ve2)
					case "edition":
						pr.Edition = p.text(vs2, ve2)
					}
				}
				it.skipTo(it2.end())
				c.Properties = pr
			}
		}
		el.skipTo(it.end())
		dst = append(dst, c)
	}
}

// key returns an object key (the token at buf[ks:ke]) for comparison with
// the known names: the raw bytes when it has no escape (the usual case, no
// copy), else its decoded form in the arena.
func (p *parser) key(it *objIter, ks, ke int) string {
	if !it.kesc {
		return bstr(p.buf[ks+1 : ke-1])
	}
	return p.str(ks, ke)
}

// numBytes returns the bytes of a number value: the token, or the content
// of a string (Q7: numbers written as strings); nil for anything else.
func (p *parser) numBytes(s, e int) []byte {
	if s >= e {
		return nil
	}
	switch c := p.buf[s]; {
	case c == '"':
		return p.buf[s+1 : e-1]
	case c == '-' || isDigit(c):
		return p.buf[s:e]
	}
	return nil
}

func (p *parser) f64(s, e int) float64 {
	f, _ := parseFloat(p.numBytes(s, e))
	return f
}

func (p *parser) i64(s, e int) int64 {
	n, _ := parseInt64(p.numBytes(s, e))
	return n
}

func (p *parser) i32(s, e int) int32 { return satI32(p.i64(s, e)) }

// boolean reads true, "true" and non-zero numbers as true.
func (p *parser) boolean(s, e int) bool {
	switch p.buf[s] {
	case 't':
		return true
	case '"':
		return string(p.buf[s+1:e-1]) == "true"
	case 'f', 'n', '{', '[':
		return false
	}
	return p.f64(s, e) != 0
}

func f32(f float64) float32 {
	switch {
	case f > math.MaxFloat32:
		return math.MaxFloat32
	case f < -math.MaxFloat32:
		return -math.MaxFloat32
	}
	return float32(f)
}

// elemIter walks the values of a list, or of an object standing for one
// (an empty Lua table is {}, Q6; tables in arrays become objects, Q11).
type elemIter struct {
	obj  objIter
	arr  arrIter
	kind byte
}

func (p *parser) elems(s int) elemIter {
	switch p.buf[s] {
	case '[':
		a, _ := newArrIter(p.buf, s)
		return elemIter{arr: a, kind: '['}
	case '{':
		o, _ := newObjIter(p.buf, s)
		return elemIter{obj: o, kind: '{'}
	}
	return elemIter{}
}

func (el *elemIter) skipTo(end int) {
	switch el.kind {
	case '[':
		el.arr.skipTo(end)
	case '{':
		el.obj.skipTo(end)
	}
}

func (el *elemIter) end() int {
	switch el.kind {
	case '[':
		return el.arr.end()
	case '{':
		return el.obj.end()
	}
	return 0
}

func (el *elemIter) next() (s, e int, ok bool) {
	switch el.kind {
	case '[':
		return el.arr.next()
	case '{':
		_, _, s, e, ok = el.obj.next()
		return s, e, ok
	}
	return 0, 0, false
}

// phaseOf maps BalatroMCP's phase strings (balatromcp-client.md 2.4) to the
// enum. UNKNOWN_STATE_1..3 are vanilla's SELECTING_HAND, HAND_PLAYED and
// DRAW_TO_HAND: playing. Anything else is UNSPECIFIED; phase_name keeps the
// string.
func phaseOf(s string) jimbotpb.GamePhase {
	var buf [24]byte
	u, ok := upper(buf[:0], s)
	if !ok {
		return jimbotpb.GamePhase_PHASE_UNSPECIFIED
	}
	switch string(u) {
	case "MENU":
		return jimbotpb.GamePhase_PHASE_MENU
	case "BLIND_SELECT":
		return jimbotpb.GamePhase_PHASE_BLIND_SELECT
	case "SHOP":
		return jimbotpb.GamePhase_PHASE_SHOP
	case "PLAYING", "UNKNOWN_STATE_1", "UNKNOWN_STATE_2", "UNKNOWN_STATE_3", "SELECTING_HAND", "HAND_PLAYED", "DRAW_TO_HAND":
		return jimbotpb.GamePhase_PHASE_PLAYING
	case "GAME_OVER":
		return jimbotpb.GamePhase_PHASE_GAME_OVER
	case "ROUND_EVAL":
		return jimbotpb.GamePhase_PHASE_ROUND_EVAL
	case "TAROT_PACK":
		return jimbotpb.GamePhase_PHASE_TAROT_PACK
	case "PLANET_PACK":
		return jimbotpb.GamePhase_PHASE_PLANET_PACK
	case "SPECTRAL_PACK":
		return jimbotpb.GamePhase_PHASE_SPECTRAL_PACK
	case "STANDARD_PACK":
		return jimbotpb.GamePhase_PHASE_STANDARD_PACK
	case "BUFFOON_PACK":
		return jimbotpb.GamePhase_PHASE_BUFFOON_PACK
	case "BOOSTER_PACK":
		return jimbotpb.GamePhase_PHASE_BOOSTER_PACK
	}
	return jimbotpb.GamePhase_PHASE_UNSPECIFIED
}

// rankOf maps "King", "K", "10", "Ace", "A" ... to the enum.
func rankOf(s string) jimbotpb.Rank {
	switch s { // the mod's spellings, without the case folding below
	case "King":
		return jimbotpb.Rank_RANK_KING
	case "Queen":
		return jimbotpb.Rank_RANK_QUEEN
	case "Jack":
		return jimbotpb.Rank_RANK_JACK
	case "Ace":
		return jimbotpb.Rank_RANK_ACE
	}
	var buf [8]byte
	u, ok := upper(buf[:0], s)
	if !ok {
		return jimbotpb.Rank_RANK_UNSPECIFIED
	}
	switch string(u) {
	case "ACE", "A", "1", "14":
		return jimbotpb.Rank_RANK_ACE
	case "2":
		return jimbotpb.Rank_RANK_TWO
	case "3":
		return jimbotpb.Rank_RANK_THREE
	case "4":
		return jimbotpb.Rank_RANK_FOUR
	case "5":
		return jimbotpb.Rank_RANK_FIVE
	case "6":
		return jimbotpb.Rank_RANK_SIX
	case "7":
		return jimbotpb.Rank_RANK_SEVEN
	case "8":
		return jimbotpb.Rank_RANK_EIGHT
	case "9":
		return jimbotpb.Rank_RANK_NINE
	case "10", "T":
		return jimbotpb.Rank_RANK_TEN
	case "JACK", "J", "11":
		return jimbotpb.Rank_RANK_JACK
	case "QUEEN", "Q", "12":
		return jimbotpb.Rank_RANK_QUEEN
	case "KING", "K", "13":
		return jimbotpb.Rank_RANK_KING
	}
	return jimbotpb.Rank_RANK_UNSPECIFIED
}

// suitOf maps "Spades", "S" ... to the enum.
func suitOf(s string) jimbotpb.Suit {
	switch s { // the mod's spellings, without the case folding below
	case "Spades":
		return jimbotpb.Suit_SUIT_SPADES
	case "Hearts":
		return jimbotpb.Suit_SUIT_HEARTS
	case "Clubs":
		return jimbotpb.Suit_SUIT_CLUBS
	case "Diamonds":
		return jimbotpb.Suit_SUIT_DIAMONDS
	}
	var buf [8]byte
	u, ok := upper(buf[:0], s)
	if !ok {
		return jimbotpb.Suit_SUIT_UNSPECIFIED
	}
	switch string(u) {
	case "SPADES", "S":
		return jimbotpb.Suit_SUIT_SPADES
	case "HEARTS", "H":
		return jimbotpb.Suit_SUIT_HEARTS
	case "CLUBS", "C":
		return jimbotpb.Suit_SUIT_CLUBS
	case "DIAMONDS", "D":
		return jimbotpb.Suit_SUIT_DIAMONDS
	}
	return jimbotpb.Suit_SUIT_UNSPECIFIED
}

// upper appends the ASCII upper case of s to dst, if it fits in dst's
// capacity (ok is false otherwise: such a string is no known name).
func upper(dst []byte, s string) ([]byte, bool) {
	if len(s) > cap(dst) {
		return nil, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst, true
}
