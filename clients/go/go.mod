module github.com/mcfault/mcfault/clients/go

go 1.19
