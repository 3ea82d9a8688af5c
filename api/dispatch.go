package api

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// execute decodes one message and runs it on the Controller, in the client's
// reader goroutine, so a client's commands run in the order sent. Direct
// answers are written, or queued for the client, before execute returns,
// hence before any broadcast the command causes later. The call-return of make-call is
// only queued (never written) because the Controller calls accepted, maybe
// under its own locks, and must not wait for a client.
func (s *Server) execute(ctx context.Context, c *client, msg []byte) {
	s.stats.commands.Add(1)
	cmd, err := ParseCommand(msg)
	if !c.commanded {
		c.commanded = true
		// A first command other than resume ends the hold of broadcasts
		// (history.go) before it runs, so what it causes comes live.
		if err != nil || cmd.Name != CmdResume {
			select {
			case s.events <- hubMsg{release: c}:
			case <-ctx.Done():
			}
		}
	}
	if err != nil {
		var ce *CommandError
		errors.As(err, &ce)
		s.failTag(c, ce.Cmd, ce.Account, ce.Tag, ce.Msg)
		return
	}
	if s.log.Enabled(ctx, slog.LevelDebug) { // the arguments cost allocations
		s.log.Debug("API command", "cmd", cmd.Name, "account", cmd.Account, "remote", c.remote)
	}
	switch cmd.Name {
	case CmdLogin:
		err = s.ctrl.Login(ctx, cmd.Account, cmd.User, cmd.Pass, cmd.Server)
	case CmdMakeCall:
		err = s.ctrl.MakeCall(ctx, cmd.Account, cmd.Num, func(id int) {
			s.enqueue(c, mustFrame(wireCallReturn{EventCallReturn, cmd.Account, id, cmd.Tag}))
		})
	case CmdAnswerCall:
		err = s.ctrl.AnswerCall(ctx, cmd.Account, cmd.CallID)
	case CmdSwitchCall:
		err = s.ctrl.SwitchCall(ctx, cmd.Account, cmd.CallID)
	case CmdHangupCall:
		err = s.ctrl.HangupCall(ctx, cmd.Account, cmd.CallID, cmd.Decline)
	case CmdLogout:
		err = s.ctrl.Logout(ctx, cmd.Account)
	case CmdGetStatus:
		var sts []Status
		sts, err = s.ctrl.Status(ctx, cmd.Account)
		if err == nil && len(sts) > 0 {
			// One write for every account's status.
			frames := encodeStatus(sts[0], cmd.Tag)
			for _, st := range sts[1:] {
				frames = append(frames, encodeStatus(st, cmd.Tag)...)
			}
			s.reply(c, frames)
		}
	case CmdPing:
		s.reply(c, s.pong(cmd))
	case CmdReload:
		s.reload(ctx, c, cmd.Tag) // writes its own answer
	case CmdResume:
		err = s.requestResume(ctx, c, cmd)
	case CmdLogLevel:
		err = s.logLevel(c, cmd)
	case CmdSendDTMF:
		err = s.ctrl.SendDTMF(ctx, cmd.Account, cmd.CallID, cmd.Digits, time.Duration(cmd.DurationMs)*time.Millisecond)
	case CmdTransferCall:
		err = s.ctrl.TransferCall(ctx, cmd.Account, cmd.CallID, cmd.Num)
	case CmdTrace, CmdSIPTrace:
		err = s.runTraceCmd(ctx, c, cmd)
	}
	if err != nil {
		s.failTag(c, cmd.Name, cmd.Account, cmd.Tag, err.Error())
	}
}

func (s *Server) fail(c *client, cmd, account, msg string) {
	s.failTag(c, cmd, account, "", msg)
}

func (s *Server) failTag(c *client, cmd, account, tag, msg string) {
	s.stats.fails.Add(1)
	s.reply(c, encodeFailTag(cmd, account, msg, tag))
}

func (s *Server) pong(cmd Command) []byte {
	if s.opts.version == "" {
		return mustFrame(wirePong{EventPong, cmd.Token, cmd.Tag})
	}
	up := int64(s.opts.now().Sub(s.opts.started) / time.Second)
	return mustFrame(wirePongInfo{EventPong, cmd.Token, cmd.Tag, s.opts.version, max(up, 0), s.latest.Load(), s.opts.startedText})
}

// requestResume has the hub replay what c missed and waits until the replay
// is queued, so that the answers of c's later commands follow it.
func (s *Server) requestResume(ctx context.Context, c *client, cmd Command) error {
	r := resumeReq{c: c, since: cmd.Since, started: cmd.Started, tag: cmd.Tag, done: make(chan struct{})}
	select {
	case s.events <- hubMsg{resume: &r}:
	case <-ctx.Done():
		return errors.New("resume: the daemon is stopping")
	}
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return errors.New("resume: the daemon is stopping")
	}
}

// logLevel answers log-level: it sets the level when one is given, and
// reports the level in force.
func (s *Server) logLevel(c *client, cmd Command) error {
	lv := s.opts.level
	if lv == nil {
		return errors.New("log-level: this server has no adjustable log level")
	}
	if cmd.Level != "" {
		var l slog.Level
		_ = l.UnmarshalText([]byte(cmd.Level)) // validated by ParseCommand
		if old := lv.Level(); old != l {
			// Logged at info while the lower of the two levels is in
			// force, so it shows whenever either level shows info.
			logIt := func() {
				s.log.Info("log level changed by an API client", "level", cmd.Level, "previous", levelName(old), "remote", c.remote)
			}
			if l > old {
				logIt()
				lv.Set(l)
			} else {
				lv.Set(l)
				logIt()
			}
		}
	}
	s.reply(c, mustFrame(wireLogLevel{EventLogLevel, levelName(lv.Level()), cmd.Tag}))
	return nil
}

// levelName is the [log] level spelling of l.
func levelName(l slog.Level) string {
	switch {
	case l <= slog.LevelDebug:
		return "debug"
	case l <= slog.LevelInfo:
		return "info"
	case l <= slog.LevelWarn:
		return "warn"
	}
	return "error"
}
