package sip

import (
	"net"

	"github.com/telestra/telestra-sip/sip/media"
)

// mediaSession is the part of *media.Session the UA drives; a fake stands
// in for it in unit tests.
type mediaSession interface {
	LocalAddr() *net.UDPAddr
	Update(p media.Params)
	Bind(p media.AudioPort)
	Stats() media.Stats
	Close() error
	dtmfQueue
	OnDTMF(func(media.DTMF))
}

// mediaAllocator hands out one session per call.
type mediaAllocator interface {
	Allocate(onTimeout func()) (mediaSession, error)
	// Reconfigure puts a reload's media settings in force for the
	// sessions allocated after it.
	Reconfigure(media.Config) error
	Close() error
}

// engineAllocator adapts *media.Engine.
type engineAllocator struct{ e *media.Engine }

func (a engineAllocator) Allocate(onTimeout func()) (mediaSession, error) {
	s, err := a.e.Allocate(onTimeout)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (a engineAllocator) Reconfigure(c media.Config) error { return a.e.Reconfigure(c) }

func (a engineAllocator) Close() error { return a.e.Close() }
