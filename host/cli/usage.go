package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// usageError is a command line that cannot work: a flag, its value, an
// argument, or the variable that stands for a flag. dibvm exits with
// status 2 for it, as for a flag it does not know, and says every
// problem at once, each on its own line.
type usageError struct{ problems []string }

func (e *usageError) Error() string { return strings.Join(e.problems, "\n") }

// problems collects what is wrong with a command line, so that the user
// hears all of it at once rather than one problem per attempt.
type problems []string

func (p *problems) add(format string, args ...any) {
	*p = append(*p, fmt.Sprintf(format, args...))
}

// addErr adds err, when there is one; the problems of a usageError one
// by one.
func (p *problems) addErr(err error) {
	if err == nil {
		return
	}
	if ue, ok := err.(*usageError); ok {
		*p = append(*p, ue.problems...)
		return
	}
	*p = append(*p, err.Error())
}

// err is nil when nothing was added, else a *usageError.
func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &usageError{problems: p}
}

// usagef is a usageError of one problem.
func usagef(format string, args ...any) error {
	return &usageError{problems: []string{fmt.Sprintf(format, args...)}}
}

// flagError makes cobra's own flag errors (unknown flag, bad value) usage
// errors that point at the command's help.
func flagError(c *cobra.Command, err error) error {
	return usagef("%v (see %s --help)", err, c.CommandPath())
}

// atLeastOne is an Args check that names what is missing, not a count.
func atLeastOne(what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return usagef("give %s: %s", what, c.UseLine())
		}
		return nil
	}
}

// exactlyOne wants one argument, what.
func exactlyOne(what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != 1 {
			return usagef("give %s, one: %s", what, c.UseLine())
		}
		return nil
	}
}

// noArgs refuses arguments a command does not take.
func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments, got %q", c.CommandPath(), args)
	}
	return nil
}

// group makes cmd, a command that only groups subcommands, refuse an
// argument that names none of them (cobra would print the help and
// exit 0), naming it and the commands there are; alone it prints the
// help.
func group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		var names []string
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() {
				names = append(names, sub.Name())
			}
		}
		if c.SuggestionsMinimumDistance <= 0 {
			c.SuggestionsMinimumDistance = 2
		}
		msg := fmt.Sprintf("%s: unknown command %q; the commands are %s", c.CommandPath(), args[0], strings.Join(names, ", "))
		if s := c.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "; did you mean " + strings.Join(s, " or ") + "?"
		}
		return usagef("%s (see %s --help)", msg, c.CommandPath())
	}
	cmd.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
	// Its usage stays that of a group: its commands, not "[flags]" alone.
	cmd.SetUsageTemplate(strings.Replace(cmd.UsageTemplate(), "{{if .Runnable}}", "{{if and .Runnable (not .HasAvailableSubCommands)}}", 1))
	return cmd
}

// groups applies group to every command under root that only groups
// others and has no run of its own, cobra's completion among them, and makes help refuse a
// topic that is no command as the command itself would.
func groups(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	root.InitDefaultHelpCmd()
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if c.HasSubCommands() && !c.Runnable() {
			group(c)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	for _, c := range root.Commands() {
		if c.Name() == "help" {
			show := c.Run
			c.RunE = func(c *cobra.Command, args []string) error {
				if target, rest, err := c.Root().Find(args); err == nil && len(rest) > 0 {
					if err := target.ValidateArgs(rest); err != nil {
						return err
					}
				}
				show(c, args)
				return nil
			}
		}
	}
}
