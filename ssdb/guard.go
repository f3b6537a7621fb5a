package ssdb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ErrNotInSubset is returned (wrapped) for a command that Guard refused
// because it is outside what SSDB supports. Nothing was sent to the server.
var ErrNotInSubset = errors.New("command outside SSDB's subset")

// arity says how many arguments, the command name included, a command of the
// subset may have: exactly min when max == min, at least min when max < 0.
// odd requires an odd count (MSET's key/value pairs plus the name).
type arity struct {
	min, max int
	odd      bool
}

// subset is every command the cache may send, with the argument counts that
// keep it to the form SSDB implements (DESIGN.md, "SSDB"). SET with options
// (EX, NX, ...) and EXPIRE with options have more arguments and are refused.
var subset = map[string]arity{
	"get":    {2, 2, false},
	"set":    {3, 3, false}, // plain SET only: SSDB ignores EX and NX
	"setex":  {4, 4, false},
	"mget":   {2, -1, false},
	"mset":   {3, -1, true},
	"del":    {2, -1, false},
	"expire": {3, 3, false},
	"ttl":    {2, 2, false},
	"incr":   {2, 2, false},
	"ping":   {1, 1, false}, // SSDB's Redis adapter answers +PONG
	"auth":   {2, 2, false}, // AUTH password; SSDB has no AUTH user password
}

// Allowed reports whether the command (name and arguments, as go-redis
// builds it) is in SSDB's subset. The error says why not.
func Allowed(args []any) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: empty command", ErrNotInSubset)
	}
	name := strings.ToLower(fmt.Sprint(args[0]))
	a, ok := subset[name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotInSubset, strings.ToUpper(name))
	}
	n := len(args)
	switch {
	case n < a.min, a.max >= 0 && n > a.max, a.odd && n%2 == 0:
		return fmt.Errorf("%w: %s with %d arguments (options such as EX, PX, NX, XX are not supported by SSDB)",
			ErrNotInSubset, strings.ToUpper(name), n-1)
	}
	return nil
}

// helloUnsupported is the answer Guard gives to go-redis's connection-time
// HELLO in place of the server. It implements redis.Error, so go-redis takes
// it as the server refusing HELLO (as a server without HELLO does) and goes
// on with RESP2, sending AUTH only if there is a password.
type helloUnsupported struct{}

func (helloUnsupported) Error() string {
	return "ERR unknown command 'HELLO' (answered by heartlog's cache guard; SSDB speaks RESP2 only)"
}
func (helloUnsupported) RedisError() {}

var _ redis.Error = helloUnsupported{}

// Guard is a go-redis hook that lets only SSDB's subset reach the server.
// Add it to a client before the client's first command, so that the
// connection handshake goes through it too:
//
//	rdb := redis.NewClient(opt)
//	rdb.AddHook(cache.Guard{})
//
// A refused command, alone or in a pipeline (a TxPipeline's MULTI and EXEC
// included), fails with ErrNotInSubset and nothing of it is written to the
// socket. HELLO is answered by the guard itself (see helloUnsupported).
type Guard struct{}

var _ redis.Hook = Guard{}

// DialHook is the identity: dialing sends no command.
func (Guard) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return next(ctx, network, addr)
	}
}

// ProcessHook refuses a single command outside the subset.
func (Guard) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "hello" {
			err := helloUnsupported{}
			cmd.SetErr(err)
			return err
		}
		if err := Allowed(cmd.Args()); err != nil {
			refusedTotal.WithLabelValues(cmd.Name()).Inc()
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook refuses a whole pipeline if any of its commands is
// outside the subset, so that no part of it is sent.
func (Guard) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			if err := Allowed(cmd.Args()); err != nil {
				refusedTotal.WithLabelValues(cmd.Name()).Inc()
				perr := fmt.Errorf("pipeline refused: %w", err)
				for _, c := range cmds {
					c.SetErr(perr)
				}
				return perr
			}
		}
		return next(ctx, cmds)
	}
}
