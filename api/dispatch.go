package api

import (
	"context"
	"errors"
	"log/slog"
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
	if err != nil {
		var ce *CommandError
		errors.As(err, &ce)
		s.fail(c, ce.Cmd, ce.Account, ce.Msg)
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
			s.enqueue(c, mustFrame(wireCallReturn{EventCallReturn, cmd.Account, id}))
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
			frames := encodeStatus(sts[0])
			for _, st := range sts[1:] {
				frames = append(frames, encodeStatus(st)...)
			}
			s.reply(c, frames)
		}
	case CmdPing:
		s.reply(c, mustFrame(wirePong{EventPong, cmd.Token}))
	case CmdReload:
		s.reload(ctx, c) // writes its own answer
	case CmdTrace, CmdSIPTrace:
		err = s.runTraceCmd(ctx, c, cmd)
	}
	if err != nil {
		s.fail(c, cmd.Name, cmd.Account, err.Error())
	}
}

func (s *Server) fail(c *client, cmd, account, msg string) {
	s.stats.fails.Add(1)
	s.reply(c, encodeFail(cmd, account, msg))
}
