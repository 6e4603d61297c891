// Must NOT compile: TorchModel with an optimizer whose state traincb does not know how to save
// (torch::optim::RMSprop). The error names the optimizer and what is supported.
#include <traincb/torch.hpp>

int main() {
    traincb::TorchModel<torch::nn::Sequential, torch::optim::RMSprop> model(
        torch::nn::Sequential(torch::nn::Linear(2, 1)), torch::optim::RMSpropOptions(0.01),
        [](const torch::Tensor& out, const torch::Tensor& y) { return torch::mse_loss(out, y); });
    (void)model;
}
