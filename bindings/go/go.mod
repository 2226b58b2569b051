module github.com/electra-project/electra/bindings/go

go 1.19
